package security

// Sandboxes in authorization. A sandbox belongs to the principal that
// created it: a user through the API, or, for a sandbox made by agent code
// (env.sandbox.run), the agent's owner, with the session recorded beside
// it. Cedar sees them as the Sandbox entity's owner and session attributes:
// the owner may do anything to it (owner-all), the creating session may
// drive it (session-own-sandbox), administrators may do anything; everyone
// else is refused. As a principal (its egress, its platform API calls) a
// sandbox carries its owner, its session, and the labels of that session,
// so what a session's sandbox does is judged like what the session does.

import (
	"context"
	"fmt"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/cedar-policy/cedar-go/types"
)

// SandboxRecord is what the platform knows about one sandbox beyond its
// spec: who owns it, which session made it, and its egress grants.
type SandboxRecord struct {
	ID      string
	Owner   string // SPIFFE ID
	Agent   string // set with Session for a session's sandbox
	Session string
	Egress  []string // host patterns
	Secrets []string // secret names the proxy may substitute
}

// EgressCaller is the egress caller of the sandbox's traffic through its
// network namespace's proxy, going out as id (its SPIFFE ID): its egress
// list, owner and secrets, and the session that made it, whose labels its
// answers move (AuditEgress).
func (r SandboxRecord) EgressCaller(id string) egress.Caller {
	return egress.Caller{ID: id, Purpose: egress.PurposeSandbox, Agent: r.Agent, Session: r.Session,
		Sandbox: r.ID, Owner: r.Owner, Allow: r.Egress, Secrets: r.Secrets}
}

// SandboxDirectory finds the record of a live sandbox.
type SandboxDirectory interface {
	SandboxRecord(id string) (SandboxRecord, bool)
}

// sandboxRecord looks a live sandbox up.
func (s *Security) sandboxRecord(id string) (SandboxRecord, bool) {
	if s.sandboxes == nil {
		return SandboxRecord{}, false
	}
	return s.sandboxes.SandboxRecord(id)
}

// sandboxEntity fills the Sandbox entity uid with what Cedar needs about
// it: owner and creating session (with its agent). For a sandbox that does
// not exist yet and is being created, the caller's own: a user owns it, a
// session is its session.
func (s *Security) sandboxEntity(ctx context.Context, ents types.EntityMap, attrs types.RecordMap, id string, caller identity.Principal, creating bool) {
	rec, exists := s.sandboxRecord(id)
	if !exists {
		if !creating {
			return
		}
		rec.Owner = caller.ID.String()
		if caller.Kind == identity.KindSession {
			rec.Owner, rec.Agent, rec.Session = "", caller.Agent, caller.Name
			if info, ok, err := s.agents.AgentInfo(ctx, caller.Agent); ok && err == nil {
				rec.Owner = info.Owner
			}
		}
	}
	if o, ok := s.userUID(rec.Owner); ok {
		attrs["owner"] = o
	}
	if rec.Session != "" {
		sess := policy.NewUID(policy.TypeSession, rec.Agent+"/"+rec.Session)
		agent := policy.NewUID(policy.TypeAgent, rec.Agent)
		if _, ok := ents[sess]; !ok {
			ents[sess] = types.Entity{UID: sess, Attributes: types.NewRecord(types.RecordMap{"agent": agent})}
		}
		if _, ok := ents[agent]; !ok {
			ents[agent] = types.Entity{UID: agent}
		}
		attrs["session"] = sess
	}
}

// sandboxPrincipal adds a sandbox acting as a principal (its egress, its
// platform API calls): owner, creating session (with agent), and extra
// attributes (egress grants). It returns the labels of the session that
// made the sandbox, so what a session's sandbox does is judged like what
// the session does; a user's sandbox has zero labels.
func (s *Security) sandboxPrincipal(ctx context.Context, ents types.EntityMap, ip identity.Principal, extra types.RecordMap) (policy.Labels, error) {
	uid := policy.PrincipalUID(ip)
	attrs := types.RecordMap{}
	for k, v := range extra {
		attrs[k] = v
	}
	var labels policy.Labels
	if rec, ok := s.sandboxRecord(ip.Name); ok {
		if o, ok := s.userUID(rec.Owner); ok {
			attrs["owner"] = o
		}
		if rec.Session != "" {
			sess := policy.NewUID(policy.TypeSession, rec.Agent+"/"+rec.Session)
			agent := policy.NewUID(policy.TypeAgent, rec.Agent)
			ents[sess] = types.Entity{UID: sess, Attributes: types.NewRecord(types.RecordMap{"agent": agent})}
			// The agent's tool grant (its manifest's tools) is what the
			// session's sandboxes may call too.
			agentAttrs := types.RecordMap{}
			if info, ok, err := s.agents.AgentInfo(ctx, rec.Agent); ok && err == nil {
				agentAttrs["tools"] = toolSet(info.Manifest.Tools)
			}
			ents[agent] = types.Entity{UID: agent, Attributes: types.NewRecord(agentAttrs)}
			attrs["session"] = sess
			l, err := s.labels.get(ctx, rec.Agent, rec.Session)
			if err != nil {
				return labels, fmt.Errorf("labels of session %s/%s: %w", rec.Agent, rec.Session, err)
			}
			labels = l
		}
	}
	ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	return labels, nil
}

// SandboxID is the SPIFFE ID of sandbox id (spiffe://TD/sandbox/ID).
func (s *Security) SandboxID(id string) (string, error) {
	sid, err := identity.NewID(s.td, identity.KindSandbox, id)
	if err != nil {
		return "", fmt.Errorf("sandbox identity: %w", err)
	}
	return sid.String(), nil
}
