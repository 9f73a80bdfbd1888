package daemon

// Sandbox ownership and identity (sandbox_access.go); the caps and quota
// of each owner are in sandbox_caps.go.
//
// A sandbox belongs to the principal that created it: a user through the
// API, or, for a sandbox made by agent code (env.sandbox.run), the agent's
// owner, with the session recorded beside it. Both live in the sandbox's
// reserved labels (sandbox.LabelOwner, sandbox.LabelSession), so the
// Manager's record is the one source. Cedar sees them as the Sandbox
// entity's owner and session attributes: the owner may do anything to it
// (owner-all), the creating session may drive it (session-own-sandbox),
// administrators may do anything; everyone else is refused. Listing filters
// each sandbox through sandbox.read.
//
// Each sandbox's identity is spiffe://TD/sandbox/ID; its egress and its
// calls to the platform API (http://agentcloud.internal) carry it.

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/builtin"
	"github.com/cedar-policy/cedar-go/types"
)

// sandboxRecord is what the platform knows about one sandbox beyond its
// spec: who owns it, which session made it, and its egress grants.
type sandboxRecord struct {
	id      string
	owner   string // SPIFFE ID
	agent   string // set with session for a session's sandbox
	session string
	egress  []string // host patterns
	secrets []string // secret names the proxy may substitute
}

func recordOf(id string, labels map[string]string) sandboxRecord {
	r := sandboxRecord{id: id, owner: labels[sandbox.LabelOwner]}
	if s := labels[sandbox.LabelSession]; s != "" {
		r.agent, r.session, _ = strings.Cut(s, "/")
	}
	split := func(v string) []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	r.egress, r.secrets = split(labels[sandbox.LabelEgress]), split(labels[sandbox.LabelSecrets])
	return r
}

// record looks up a live sandbox.
func (parts *sandboxParts) record(id string) (sandboxRecord, bool) {
	info, err := parts.manager.Info(id)
	if err != nil {
		return sandboxRecord{}, false
	}
	return recordOf(id, info.Labels), true
}

// sandboxID is the SPIFFE ID of a sandbox.
func (d *Daemon) sandboxID(id string) (string, error) {
	sid, err := identity.NewID(d.sec.td, identity.KindSandbox, id)
	if err != nil {
		return "", fmt.Errorf("sandbox identity: %w", err)
	}
	return sid.String(), nil
}

// sandboxEntity fills the Sandbox entity uid with what Cedar needs about
// it: owner and creating session (with its agent). For a sandbox that does
// not exist yet and is being created, the caller's own: a user owns it, a
// session is its session.
func (s *security) sandboxEntity(ctx context.Context, ents types.EntityMap, attrs types.RecordMap, id string, caller identity.Principal, creating bool) {
	var rec sandboxRecord
	exists := false
	if s.sandboxLookup != nil {
		rec, exists = s.sandboxLookup(id)
	}
	if !exists {
		if !creating {
			return
		}
		rec.owner = caller.ID.String()
		if caller.Kind == identity.KindSession {
			rec.owner, rec.agent, rec.session = "", caller.Agent, caller.Name
			if info, ok, err := s.agentInfo(ctx, caller.Agent); ok && err == nil {
				rec.owner = info.Owner
			}
		}
	}
	if o, ok := s.userUID(rec.owner); ok {
		attrs["owner"] = o
	}
	if rec.session != "" {
		sess := policy.NewUID(policy.TypeSession, rec.agent+"/"+rec.session)
		agent := policy.NewUID(policy.TypeAgent, rec.agent)
		if _, ok := ents[sess]; !ok {
			ents[sess] = types.Entity{UID: sess, Attributes: types.NewRecord(types.RecordMap{"agent": agent})}
		}
		if _, ok := ents[agent]; !ok {
			ents[agent] = types.Entity{UID: agent}
		}
		attrs["session"] = sess
	}
}

func (s *security) agentInfo(ctx context.Context, agent string) (session.AgentInfo, bool, error) {
	if s.sessions == nil {
		return session.AgentInfo{}, false, nil
	}
	return s.sessions.AgentInfo(ctx, agent)
}

// sandboxAccess returns the sandbox API's create and list hooks: create
// stamps the caller as owner (the Manager's Admission, sandboxCaps, then
// applies the owner's caps); list shows only what the caller may read.
func (d *Daemon) sandboxAccess(parts *sandboxParts) (func(*http.Request, *sandbox.Spec) error, func(*http.Request, sandbox.Info) bool) {
	create := func(r *http.Request, spec *sandbox.Spec) error {
		p, ok := httpapi.PrincipalFrom(r.Context())
		if !ok {
			return api.Errorf(api.KindUnauthenticated, "no principal")
		}
		ownSandbox(spec, p.ID, "", "")
		return nil
	}
	visible := func(r *http.Request, info sandbox.Info) bool {
		p, ok := httpapi.PrincipalFrom(r.Context())
		if !ok {
			return false
		}
		ctx := session.Filtering(r.Context())
		return d.sec.Authorize(ctx, p, sandboxhttp.ActionRead, httpapi.Resource{Type: policy.TypeSandbox, ID: info.ID}) == nil
	}
	return create, visible
}

// ownSandbox stamps owner (and the creating session, if any) on spec. The
// owner's caps and quota are applied by sandboxCaps when the Manager
// creates the sandbox; administrators have none.
func ownSandbox(spec *sandbox.Spec, owner, agent, sess string) {
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[sandbox.LabelOwner] = owner
	if sess != "" {
		spec.Labels[sandbox.LabelSession] = agent + "/" + sess
	}
}

// sandboxPrincipal adds a sandbox acting as a principal (its egress, its
// platform API calls): owner, creating session (with agent), and extra
// attributes (egress grants). It returns the labels of the session that
// made the sandbox, so what a session's sandbox does is judged like what
// the session does; a user's sandbox has zero labels.
func (s *security) sandboxPrincipal(ctx context.Context, ents types.EntityMap, ip identity.Principal, extra types.RecordMap) (policy.Labels, error) {
	uid := policy.PrincipalUID(ip)
	attrs := types.RecordMap{}
	for k, v := range extra {
		attrs[k] = v
	}
	var labels policy.Labels
	if s.sandboxLookup != nil {
		if rec, ok := s.sandboxLookup(ip.Name); ok {
			if o, ok := s.userUID(rec.owner); ok {
				attrs["owner"] = o
			}
			if rec.session != "" {
				sess := policy.NewUID(policy.TypeSession, rec.agent+"/"+rec.session)
				agent := policy.NewUID(policy.TypeAgent, rec.agent)
				ents[sess] = types.Entity{UID: sess, Attributes: types.NewRecord(types.RecordMap{"agent": agent})}
				// The agent's tool grant (its manifest's tools) is what the
				// session's sandboxes may call too.
				agentAttrs := types.RecordMap{}
				if info, ok, err := s.agentInfo(ctx, rec.agent); ok && err == nil {
					tools := make([]types.Value, 0, len(info.Manifest.Tools))
					for _, t := range info.Manifest.Tools {
						tools = append(tools, policy.NewUID(policy.TypeTool, t))
					}
					agentAttrs["tools"] = types.NewSet(tools...)
				}
				ents[agent] = types.Entity{UID: agent, Attributes: types.NewRecord(agentAttrs)}
				attrs["session"] = sess
				l, err := s.labels.get(ctx, rec.agent, rec.session)
				if err != nil {
					return labels, fmt.Errorf("labels of session %s/%s: %w", rec.agent, rec.session, err)
				}
				labels = l
			}
		}
	}
	ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	return labels, nil
}

// toolSandboxes makes the run_code tool's sandboxes (builtin.Sandboxes),
// owned like any other: by the calling user, by the agent's owner for a
// session (tied to the session), by its own owner for a sandbox calling
// tools (tied to its session, if any). So they count against that owner's
// caps and quota and show in the owner's list while they live.
type toolSandboxes struct {
	d     *Daemon
	parts *sandboxParts
}

var _ builtin.Sandboxes = toolSandboxes{}

// Create implements builtin.Sandboxes.
func (s toolSandboxes) Create(ctx context.Context, c toolbox.Caller, spec sandbox.Spec) (sandbox.Sandbox, error) {
	owner, agent, sess := c.Principal, "", ""
	switch {
	case c.Session != "":
		agent, sess = c.Agent, c.Session
		info, ok, err := s.d.sessions.AgentInfo(ctx, c.Agent)
		if err != nil || !ok {
			return nil, fmt.Errorf("agent %s: not deployed (%v)", c.Agent, err)
		}
		owner = info.Owner
		if owner == "" { // deployed by an administrator
			owner = s.d.sec.admin.ID
		}
	case c.Sandbox != "":
		rec, ok := s.parts.record(c.Sandbox)
		if !ok {
			return nil, fmt.Errorf("calling sandbox %s: %w", c.Sandbox, sandbox.ErrNotFound)
		}
		owner, agent, sess = rec.owner, rec.agent, rec.session
	}
	if owner == "" {
		return nil, api.Errorf(api.KindUnauthenticated, "run_code: the caller has no identity to own a sandbox")
	}
	ownSandbox(&spec, owner, agent, sess)
	return s.parts.manager.Create(ctx, "", spec)
}

// Delete implements builtin.Sandboxes.
func (s toolSandboxes) Delete(ctx context.Context, id string) error {
	return s.parts.manager.Delete(ctx, id)
}
