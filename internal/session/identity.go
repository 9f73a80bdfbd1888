package session

import (
	"context"

	"github.com/agentcloud/agentcloud/api"
)

// Identity gives sessions their workload identity: Activate runs when a
// session's isolate starts (under the session's input gate, so it must be
// quick: mint credentials in the background) and returns the session's
// SPIFFE ID, which Caller.ID then carries; Release runs when the session
// leaves memory (hibernated, evicted, deleted, crashed or retired).
type Identity interface {
	Activate(ctx context.Context, c Caller) (id string, err error)
	Release(agent, session string)
}

// attachIdentity gives an activating session its identity; s.mu held.
func (m *Manager) attachIdentity(ctx context.Context, s *session) error {
	s.spiffeID = ""
	if m.b.Identity == nil {
		return nil
	}
	id, err := m.b.Identity.Activate(ctx, s.callerBase())
	if err != nil {
		return api.Errorf(api.KindSessionCrashed, "session %s/%s identity: %v", s.key.agent, s.key.id, err)
	}
	s.spiffeID = id
	return nil
}

// releaseIdentity drops a session's identity as it leaves memory; s.mu held.
func (m *Manager) releaseIdentity(s *session) {
	if m.b.Identity != nil && s.spiffeID != "" {
		m.b.Identity.Release(s.key.agent, s.key.id)
		s.spiffeID = ""
	}
}

// callerBase is the Caller of s from its version's manifest.
func (s *session) callerBase() Caller {
	c := Caller{Agent: s.key.agent, Session: s.key.id, ID: s.spiffeID}
	if s.ver != nil {
		c.Egress = s.ver.rec.Manifest.Egress
		c.Tools = s.ver.rec.Manifest.Tools
	}
	return c
}
