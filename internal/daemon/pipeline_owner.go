package daemon

import (
	"context"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
)

// agentDirectory is the security part's view of agents: the session
// manager's, and, for an agent not deployed yet whose first release a
// person's pipeline run holds, that person as its owner (ok stays false:
// the agent does not exist). So the author of a first release may read
// and cancel their own run while it waits for review, and nobody else may
// act on the name meanwhile.
type agentDirectory struct{ d *Daemon }

var _ security.AgentDirectory = agentDirectory{}

// AgentInfo implements security.AgentDirectory.
func (a agentDirectory) AgentInfo(ctx context.Context, name string) (session.AgentInfo, bool, error) {
	info, ok, err := a.d.sessions.AgentInfo(ctx, name)
	if ok || err != nil {
		return info, ok, err
	}
	r := a.d.pipeRunner.Load()
	if r == nil {
		return info, false, nil
	}
	run, active, rerr := r.Active(ctx, name)
	if rerr != nil || !active || run.Parent != "" || run.Principal.Kind != api.AuthorHuman {
		return info, false, nil
	}
	info.Owner = run.Principal.ID
	return info, false, nil
}
