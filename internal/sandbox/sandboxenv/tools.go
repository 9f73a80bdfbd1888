package sandboxenv

import (
	"context"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/builtin"
)

// ToolSandboxes makes the run_code tool's sandboxes (builtin.Sandboxes),
// owned like any other: by the calling user, by the agent's owner for a
// session (tied to the session), by its own owner for a sandbox calling
// tools (tied to its session, if any). So they count against that owner's
// caps and quota and show in the owner's list while they live. It uses
// cfg's Manager, Security (Admin) and Agents.
type ToolSandboxes struct{ cfg Config }

var _ builtin.Sandboxes = ToolSandboxes{}

// NewToolSandboxes returns the run_code tool's sandboxes over cfg.
func NewToolSandboxes(cfg Config) ToolSandboxes { return ToolSandboxes{cfg: cfg} }

// Create implements builtin.Sandboxes.
func (s ToolSandboxes) Create(ctx context.Context, c toolbox.Caller, spec sandbox.Spec) (sandbox.Sandbox, error) {
	owner, agent, sess := c.Principal, "", ""
	switch {
	case c.Session != "":
		agent, sess = c.Agent, c.Session
		info, ok, err := s.cfg.Agents.AgentInfo(ctx, c.Agent)
		if err != nil || !ok {
			return nil, fmt.Errorf("agent %s: not deployed (%v)", c.Agent, err)
		}
		owner = info.Owner
		if owner == "" { // deployed by an administrator
			owner = s.cfg.Security.Admin().ID
		}
	case c.Sandbox != "":
		rec, ok := s.cfg.Manager.OwnershipOf(c.Sandbox)
		if !ok {
			return nil, fmt.Errorf("calling sandbox %s: %w", c.Sandbox, sandbox.ErrNotFound)
		}
		owner, agent, sess = rec.Owner, rec.Agent, rec.Session
	}
	if owner == "" {
		return nil, api.Errorf(api.KindUnauthenticated, "run_code: the caller has no identity to own a sandbox")
	}
	sandbox.Own(&spec, owner, agent, sess)
	return s.cfg.Manager.Create(ctx, "", spec)
}

// Delete implements builtin.Sandboxes.
func (s ToolSandboxes) Delete(ctx context.Context, id string) error {
	return s.cfg.Manager.Delete(ctx, id)
}
