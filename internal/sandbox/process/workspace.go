//go:build linux

package process

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// workspaceTree prepares the host directory dir (Spec.HostWorkspace) for
// this sandbox: it makes every file in it the sandbox user's host uid (a
// workspace made by an earlier sandbox, or before a daemon restart, belongs
// to the uid that sandbox had) and returns it as a detached mount
// (open_tree OPEN_TREE_CLONE) for init to attach on /workspace. A fork
// copy's workspace is mounted again over an idmapped layer instead where
// the kernel allows (workspace_fork.go). "" gives nil: /workspace is a
// tmpfs.
func (b *box) workspaceTree(dir string) ([]*os.File, error) {
	if dir == "" {
		return nil, nil
	}
	if fl, ok := sandbox.ForkLayerOf(dir); ok {
		f, done, err := b.forkWorkspaceTree(dir, fl)
		if err != nil {
			return nil, fmt.Errorf("workspace %s: %w", dir, err)
		}
		if done {
			return []*os.File{f}, nil
		}
	}
	if err := chownTree(dir, b.hostUID, b.hostGID); err != nil {
		return nil, fmt.Errorf("workspace %s: %w", dir, err)
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: open_tree: %w", dir, err)
	}
	return []*os.File{os.NewFile(uintptr(fd), dir)}, nil
}

// chownTree gives every file under dir (dir included, symlinks themselves)
// to uid:gid, skipping those that already belong to them: a fresh or
// same-owner workspace costs one walk of stats.
func chownTree(dir string, uid, gid int) error {
	return chownWalk(dir, uid, gid, false)
}

// chownWalk is chownTree, leaving character devices alone with
// skipCharDevices (an overlay upper dir's whiteouts).
func chownWalk(dir string, uid, gid int, skipCharDevices bool) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && int(st.Uid) == uid && int(st.Gid) == gid || skipCharDevices && fi.Mode()&fs.ModeCharDevice != 0 {
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
}

// HostWorkspace reports that this tier mounts Spec.HostWorkspace
// (sandbox.HostWorkspacer).
func (t *Tier) HostWorkspace() bool { return true }
