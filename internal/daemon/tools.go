package daemon

// Toolbox wiring: the built-in tools over the daemon's parts, the security
// part as the Cedar authorizer, auditor and labeler, the /mcp endpoint with
// its RFC 9728 metadata and the /v1/tools REST routes (toolboxhttp) and
// env.tools (toolenv).

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
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
		Agents:    pipelineAgents{d}, // deploy_agent goes through the pipeline (pipeline_deploy.go)
		Fetch:     toolFetcher{d},
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
		Logger:     log,
	})
	d.tools.box = tb
	d.tools.mcp = mcpserver.New(mcpserver.Config{Toolbox: tb, Version: version.Get().Version, Logger: log,
		Authenticate: d.toolCallerOf})
	d.env["tools"] = toolenv.New(tb, d.sec.TrustDomain())
	toolboxhttp.New(toolboxhttp.Config{Toolbox: tb, MCP: d.tools.mcp, Authenticate: d.toolCallerOf,
		Caller: d.toolCaller}).Routes(d.router)
	return nil
}

// httpPrincipal is the request principal of a tool caller.
func (d *Daemon) httpPrincipal(c toolbox.Caller) httpapi.Principal {
	p := httpapi.Principal{ID: c.Principal}
	if ip, err := identity.ParsePrincipal(d.sec.TrustDomain(), c.Principal); err == nil {
		p.Kind = string(ip.Kind)
	}
	return p
}

// sessionPrincipal is the deployer a tool caller is for session.Deploy.
func (d *Daemon) sessionPrincipal(c toolbox.Caller) session.Principal {
	p := d.httpPrincipal(c)
	return session.Principal{ID: p.ID, Kind: p.Kind}
}

// actAs returns ctx carrying the tool caller as the request principal.
func (d *Daemon) actAs(ctx context.Context, c toolbox.Caller) context.Context {
	return httpapi.WithPrincipal(ctx, d.httpPrincipal(c))
}

// authorizeForTool authorizes what a built-in tool does for its caller
// (state, agents) exactly as the REST API would.
func (d *Daemon) authorizeForTool(ctx context.Context, c toolbox.Caller, action string, res builtin.Resource) error {
	return d.sec.Authorize(ctx, security.Principal(d.httpPrincipal(c)), action, security.Resource{Type: res.Type, ID: res.ID, Parent: res.Parent})
}

// toolCaller turns an authenticated principal into a tool caller; a
// session's manifest tools list becomes Allowed.
func (d *Daemon) toolCaller(ctx context.Context, p httpapi.Principal) (toolbox.Caller, error) {
	c := toolbox.Caller{Principal: p.ID}
	ip, err := identity.ParsePrincipal(d.sec.TrustDomain(), p.ID)
	if err != nil {
		return c, nil // the bootstrap admin and other non-SPIFFE principals
	}
	switch ip.Kind {
	case identity.KindSession:
		c.Agent, c.Session = ip.Agent, ip.Name
		c.Allowed = []string{}
		if info, ok, err := d.sessions.AgentInfo(ctx, ip.Agent); err != nil {
			return c, err
		} else if ok && info.Manifest.Tools != nil {
			c.Allowed = info.Manifest.Tools
		}
	case identity.KindSandbox:
		c.Sandbox = ip.Name
	case identity.KindAgent:
		c.Agent = ip.Name
	}
	return c, nil
}

// toolCallerOf authenticates an /mcp request.
func (d *Daemon) toolCallerOf(r *http.Request) (toolbox.Caller, error) {
	p, err := d.sec.Authenticate(r)
	if err != nil {
		return toolbox.Caller{}, err
	}
	return d.toolCaller(r.Context(), httpapi.Principal(p))
}

// toolFetcher sends http_fetch through the egress proxy: a session's call
// as the session (manifest allowlist, policy, labels), anyone else's under
// their own identity and policy.
type toolFetcher struct{ d *Daemon }

func (f toolFetcher) Fetch(ctx context.Context, c toolbox.Caller, req *http.Request) (*http.Response, error) {
	d := f.d
	if c.Session != "" {
		sc := session.Caller{Agent: c.Agent, Session: c.Session}
		if info, ok, err := d.sessions.AgentInfo(ctx, c.Agent); err == nil && ok {
			sc.Egress, sc.Tools = info.Manifest.Egress, info.Manifest.Tools
		}
		return d.sec.SessionFetcher(d.proxy).Fetch(ctx, sc, req)
	}
	id := c.Principal
	if !strings.HasPrefix(id, "spiffe://") {
		return nil, toolbox.Errorf(toolbox.CodeForbidden, "http_fetch", "caller %q has no platform identity to fetch with", id)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	resp, err := d.proxy.Do(ctx, egress.Caller{ID: id, Purpose: egress.PurposeTool}, req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

type cancelBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	cancel context.CancelFunc
}

func (b cancelBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b cancelBody) Close() error               { err := b.rc.Close(); b.cancel(); return err }
