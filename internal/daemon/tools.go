package daemon

// Toolbox wiring: the built-in tools over the daemon's parts, the security
// part as the Cedar authorizer, auditor and labeler, the /mcp endpoint with
// its RFC 9728 metadata and the /v1/tools REST routes (toolboxhttp) and
// env.tools (toolenv).

import (
	"context"
	"errors"

	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/pipeline/pipelinehttp"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxenv"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/builtin"
	"github.com/agentcloud/agentcloud/internal/toolbox/mcpserver"
	"github.com/agentcloud/agentcloud/internal/toolbox/toolboxhttp"
	"github.com/agentcloud/agentcloud/internal/toolbox/toolenv"
	"github.com/agentcloud/agentcloud/internal/version"
)

// toolParts are the toolbox and its MCP endpoint of one daemon.
type toolParts struct {
	box *toolbox.Toolbox
	mcp *mcpserver.Handler
}

// Tools is the daemon's toolbox (valid after Start); registries add their
// providers to it with AddProvider.
func (d *Daemon) Tools() *toolbox.Toolbox { return d.tools.box }

// startTools builds the toolbox and serves it. Must be called after
// startSandboxes.
func (d *Daemon) startTools(ctx context.Context) error {
	log := d.log.With("component", "toolbox")
	deps := builtin.Deps{
		State:     d.sessions,
		Agents:    pipelinehttp.ToolAgents{Sessions: d.sessions, Deployer: d.pipe.deploy}, // deploy_agent is a pipeline run
		Fetch:     security.ToolFetcher{Sec: d.sec, Proxy: d.proxy},
		Authorize: d.authorizeForTool,
		Principal: d.sessionPrincipal,
		ActAs:     d.actAs,
		Flow:      d.sec,
	}
	if d.sandboxes != nil && d.sandboxes.manager != nil {
		deps.Sandboxes = sandboxenv.NewToolSandboxes(d.sandboxes.env)
	} else {
		deps.SandboxesOff = errors.New("this host cannot run sandboxes (see the daemon log at start)")
	}
	var tb *toolbox.Toolbox
	deps.Search = func(ctx context.Context, words string, limit int) ([]toolbox.Tool, error) {
		return tb.Search(ctx, words, limit)
	}
	tb = toolbox.New(toolbox.Config{
		Builtins:   builtin.New(deps),
		Authorizer: d.sec,
		Auditor:    d.sec,
		Labeler:    d.sec,
		// Per caller across tools; per-tool limits are the registry's.
		CallerRate: toolbox.Rate{PerSecond: d.cfg.ToolCallsPerSecond, Burst: d.cfg.ToolCallBurst},
		Logger:     log, Metrics: d.reg,
	})
	d.tools.box = tb
	d.tools.mcp = mcpserver.New(mcpserver.Config{Toolbox: tb, Version: version.Get().Version, Logger: log,
		Authenticate: d.sec.ToolCallerOf})
	d.env["tools"] = toolenv.New(tb, d.sec.TrustDomain())
	toolboxhttp.New(toolboxhttp.Config{Toolbox: tb, MCP: d.tools.mcp, Authenticate: d.sec.ToolCallerOf,
		Caller: d.toolCaller}).Routes(d.router)
	return nil
}

// toolPrincipal is the request principal of a tool caller.
func (d *Daemon) toolPrincipal(c toolbox.Caller) httpapi.Principal {
	return httpapi.Principal(d.sec.ToolPrincipal(c))
}

// sessionPrincipal is the deployer a tool caller is for session.Deploy.
func (d *Daemon) sessionPrincipal(c toolbox.Caller) session.Principal {
	return session.Principal(d.sec.ToolPrincipal(c))
}

// actAs returns ctx carrying the tool caller as the request principal.
func (d *Daemon) actAs(ctx context.Context, c toolbox.Caller) context.Context {
	return httpapi.WithPrincipal(ctx, d.toolPrincipal(c))
}

// authorizeForTool authorizes what a built-in tool does for its caller
// (state, agents) exactly as the REST API would.
func (d *Daemon) authorizeForTool(ctx context.Context, c toolbox.Caller, action string, res builtin.Resource) error {
	return d.sec.Authorize(ctx, d.sec.ToolPrincipal(c), action, security.Resource(res))
}

// toolCaller is security's tool caller of an authenticated principal.
func (d *Daemon) toolCaller(ctx context.Context, p httpapi.Principal) (toolbox.Caller, error) {
	return d.sec.ToolCaller(ctx, security.Principal(p))
}
