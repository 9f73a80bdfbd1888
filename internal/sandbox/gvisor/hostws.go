//go:build linux

package gvisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Workspaces on host storage (Config.HostWorkspaceDir): a container is
// prepared (often for the warm pool, before anyone knows its id) with a
// fresh directory HostWorkspaceDir/<cid> bound on rw/workspace, which the
// gofer serves. Activate adopts it as the sandbox's Spec.HostWorkspace
// (<data>/sandboxes/<id>/workspace): the files already there (a restart,
// a fork, a restore) are moved into it, then it is renamed over that
// path. Renames keep the inode the gofer holds, so the running sandbox
// sees the same directory, now where the Manager keeps, measures and,
// after a daemon restart, finds it. Both directories must be on one
// filesystem (the daemon puts both under its data dir).

var _ sandbox.HostWorkspacer = (*Tier)(nil)

// HostWorkspace reports whether /workspace is on host storage
// (sandbox.HostWorkspacer).
func (t *Tier) HostWorkspace() bool { return t.hostWS != "" }

// resetHostWorkspaces creates HostWorkspaceDir and empties it: what is
// there was prepared by an earlier run and never adopted.
func (t *Tier) resetHostWorkspaces() error {
	if t.hostWS == "" {
		return nil
	}
	if err := os.MkdirAll(t.hostWS, 0o700); err != nil {
		return fmt.Errorf("gvisor workspace dir: %w", err)
	}
	ents, err := os.ReadDir(t.hostWS)
	if err != nil {
		return fmt.Errorf("gvisor workspace dir: %w", err)
	}
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(t.hostWS, e.Name()))
	}
	return nil
}

// hostWorkspace makes the container's own workspace directory and binds
// it on mountPoint.
func (c *container) hostWorkspace(mountPoint string) error {
	c.wsDir = filepath.Join(c.tier.hostWS, c.cid)
	if err := os.Mkdir(c.wsDir, 0o755); err != nil {
		return fmt.Errorf("gvisor workspace: %w", err)
	}
	if err := os.Chown(c.wsDir, sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
		return fmt.Errorf("gvisor workspace: %w", err)
	}
	if err := unix.Mount(c.wsDir, mountPoint, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind gvisor workspace: %w", err)
	}
	return nil
}

// adopt makes the container's workspace directory ws: ws's files move into
// it, then it replaces ws.
func (c *container) adopt(ws string) error {
	if c.wsDir == "" {
		return fmt.Errorf("host workspace %s: the gvisor tier keeps /workspace in memory: %w", ws, sandbox.ErrUnsupported)
	}
	ents, err := os.ReadDir(ws)
	if err != nil {
		return fmt.Errorf("host workspace: %w", err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(ws, e.Name()), filepath.Join(c.wsDir, e.Name())); err != nil {
			return fmt.Errorf("host workspace: %w", err)
		}
	}
	if err := chownTree(c.wsDir); err != nil { // the sandbox user's files
		return fmt.Errorf("host workspace: %w", err)
	}
	// rename(2) itself: os.Rename refuses to replace a directory, even an
	// empty one.
	if err := unix.Rename(c.wsDir, ws); err != nil {
		return fmt.Errorf("host workspace (%s and %s must be on one filesystem): %w", c.tier.hostWS, ws, err)
	}
	c.wsDir, c.adopted = ws, true
	return nil
}

// chownTree gives every file under dir to the sandbox user.
func chownTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return os.Lchown(p, sandbox.SandboxUID, sandbox.SandboxGID)
	})
}
