package daemon

// Sandbox ownership (sandbox_access.go); the caps and quota of each owner
// are in sandbox_caps.go, what ownership means to authorization in
// internal/security/sandboxes.go.
//
// A sandbox belongs to the principal that created it: a user through the
// API, or, for a sandbox made by agent code (env.sandbox.run), the agent's
// owner, with the session recorded beside it. Both live in the sandbox's
// reserved labels (sandbox.Own, sandbox.OwnershipOf), so the Manager's
// record is the one source; the security part reads it through
// sandboxDirectory. env.sandbox and the run_code tool's sandboxes are
// internal/sandbox/sandboxenv. Listing filters each sandbox through sandbox.read.
//
// Each sandbox's identity is spiffe://TD/sandbox/ID; its egress and its
// calls to the platform API (http://agentcloud.internal) carry it.

import (
	"net/http"
	"sync/atomic"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
)

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
	o, ok := parts.manager.OwnershipOf(id)
	return security.SandboxRecord(o), ok
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
		sandbox.Own(spec, p.ID, "", "")
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
