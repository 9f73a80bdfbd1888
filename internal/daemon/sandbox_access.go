package daemon

// Sandbox ownership (sandbox_access.go): the security part reads each
// sandbox's owner from the Manager's record through sandboxDirectory
// (securityhttp stamps it at creation, internal/security/sandboxes.go says
// what it means to authorization). Each sandbox's identity is
// spiffe://TD/sandbox/ID; its egress and its calls to the platform API
// (http://agentcloud.internal) carry it.

import (
	"sync/atomic"

	"github.com/agentcloud/agentcloud/internal/security"
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
