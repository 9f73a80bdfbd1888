//go:build linux

package sbinit

import (
	"fmt"
	"path"
	"strings"
)

// The sandbox's fixed layout and identity, as in internal/sandbox (which this
// package must not import: see the package doc). The process tier's tests
// check that the two agree.
const (
	WorkspaceDir  = "/workspace"
	TmpDir        = "/tmp"
	SandboxUID    = 1000
	SandboxGID    = 1000
	DefaultDiskMB = 256
	// MaxSetupFiles bounds the mounts a setup message carries (SCM_RIGHTS
	// takes at most 253 fds per message; layers plus the writable dir).
	MaxSetupFiles = 130
)

// Process is one process inside the sandbox (Process).
type Process struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Cmdline []string `json:"cmdline"`
	State   string   `json:"state"`
}

// WindowSize is a terminal's size in character cells (WindowSize).
type WindowSize struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// errPathNotAllowed mirrors sandbox.ErrPathNotAllowed inside init.
var errPathNotAllowed = fmt.Errorf("path outside %s and %s", WorkspaceDir, TmpDir)

// CheckWritable refuses a path that is not under /workspace or /tmp (as
// sandbox.ResolvePath does on the host).
func CheckWritable(p string) error {
	if !strings.HasPrefix(p, "/") {
		p = WorkspaceDir + "/" + p
	}
	clean := path.Clean(p)
	for _, r := range []string{WorkspaceDir, TmpDir} {
		if clean == r || strings.HasPrefix(clean, r+"/") {
			return nil
		}
	}
	return fmt.Errorf("resolve %q: %w", p, errPathNotAllowed)
}
