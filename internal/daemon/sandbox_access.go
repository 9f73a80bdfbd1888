package daemon

// Sandbox ownership (sandbox_access.go); the caps and quota of each owner
// are in sandbox_caps.go, what ownership means to authorization in
// internal/security/sandboxes.go.
//
// A sandbox belongs to the principal that created it: a user through the
// API, or, for a sandbox made by agent code (env.sandbox.run), the agent's
// owner, with the session recorded beside it. Both live in the sandbox's
// reserved labels (sandbox.LabelOwner, sandbox.LabelSession), so the
// Manager's record is the one source; the security part reads it through
// sandboxDirectory. Listing filters each sandbox through sandbox.read.
//
// Each sandbox's identity is spiffe://TD/sandbox/ID; its egress and its
// calls to the platform API (http://agentcloud.internal) carry it.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/builtin"
)

// recordOf reads a sandbox's ownership record from its reserved labels.
func recordOf(id string, labels map[string]string) security.SandboxRecord {
	r := security.SandboxRecord{ID: id, Owner: labels[sandbox.LabelOwner]}
	if s := labels[sandbox.LabelSession]; s != "" {
		r.Agent, r.Session, _ = strings.Cut(s, "/")
	}
	split := func(v string) []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	r.Egress, r.Secrets = split(labels[sandbox.LabelEgress]), split(labels[sandbox.LabelSecrets])
	return r
}

// record looks up a live sandbox.
func (parts *sandboxParts) record(id string) (security.SandboxRecord, bool) {
	info, err := parts.manager.Info(id)
	if err != nil {
		return security.SandboxRecord{}, false
	}
	return recordOf(id, info.Labels), true
}

// sandboxDirectory is the security part's SandboxDirectory: the live
// sandboxes of the Manager, once startSandboxes has built it (none before,
// or on a host that cannot run sandboxes).
type sandboxDirectory struct{ parts atomic.Pointer[sandboxParts] }

var _ security.SandboxDirectory = (*sandboxDirectory)(nil)

// SandboxRecord implements security.SandboxDirectory.
func (sd *sandboxDirectory) SandboxRecord(id string) (security.SandboxRecord, bool) {
	parts := sd.parts.Load()
	if parts == nil || parts.manager == nil {
		return security.SandboxRecord{}, false
	}
	return parts.record(id)
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
		return d.sec.Authorize(ctx, security.Principal(p), sandboxhttp.ActionRead, security.Resource{Type: policy.TypeSandbox, ID: info.ID}) == nil
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
			owner = s.d.sec.Admin().ID
		}
	case c.Sandbox != "":
		rec, ok := s.parts.record(c.Sandbox)
		if !ok {
			return nil, fmt.Errorf("calling sandbox %s: %w", c.Sandbox, sandbox.ErrNotFound)
		}
		owner, agent, sess = rec.Owner, rec.Agent, rec.Session
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
