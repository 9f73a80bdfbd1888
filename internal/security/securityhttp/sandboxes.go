package securityhttp

// Sandbox ownership on the sandbox API (sandboxes.go); what ownership
// means to authorization is internal/security/sandboxes.go, the caps of
// each owner sandbox.Caps.
//
// A sandbox belongs to the principal that created it: a user through the
// API, or, for a sandbox made by agent code (env.sandbox.run), the agent's
// owner, with the session recorded beside it. Both live in the sandbox's
// reserved labels (sandbox.Own, sandbox.OwnershipOf), so the Manager's
// record is the one source.

import (
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
)

// SandboxCreate is the sandbox API's BeforeCreate: it stamps the caller
// as the owner (the Manager's Admission then applies the owner's caps).
func SandboxCreate(r *http.Request, spec *sandbox.Spec) error {
	p, ok := httpapi.PrincipalFrom(r.Context())
	if !ok {
		return api.Errorf(api.KindUnauthenticated, "no principal")
	}
	sandbox.Own(spec, p.ID, "", "")
	return nil
}

// SandboxIdentity is the sandbox API's Identity: a sandbox's SPIFFE ID.
func (a Auth) SandboxIdentity(id string) string {
	sid, _ := a.Sec.SandboxID(id)
	return sid
}

// SandboxVisible is the sandbox API's Visible: a list shows only what the
// caller may read (sandbox.read).
func (a Auth) SandboxVisible(r *http.Request, info sandbox.Info) bool {
	p, ok := httpapi.PrincipalFrom(r.Context())
	if !ok {
		return false
	}
	ctx := session.Filtering(r.Context())
	return a.Sec.Authorize(ctx, security.Principal(p), sandbox.ActionRead, security.Resource{Type: policy.TypeSandbox, ID: info.ID}) == nil
}

// SnapshotVisible is the sandbox API's SnapshotVisible: a list of
// snapshots shows only those the caller may read (sandbox.read on
// Snapshot::"id", whose owner is the snapshot's).
func (a Auth) SnapshotVisible(r *http.Request, id string) bool {
	p, ok := httpapi.PrincipalFrom(r.Context())
	if !ok {
		return false
	}
	return a.Sec.Authorize(r.Context(), security.Principal(p), sandbox.ActionRead, security.Resource{Type: "Snapshot", ID: id}) == nil
}
