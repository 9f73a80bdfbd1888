//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"

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
// skipCharDevices (an overlay upper dir's whiteouts). It walks by file
// descriptor: each directory is opened relative to its parent with
// O_NOFOLLOW and each entry changed relative to its directory without
// following a symlink, so a directory that a process of the sandbox swaps
// for a symlink while the walk runs never leads it outside dir.
func chownWalk(dir string, uid, gid int, skipCharDevices bool) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	w := chowner{uid: uid, gid: gid, skipCharDevices: skipCharDevices}
	return w.dir(fd, dir, 0)
}

// maxChownDepth bounds how deep chownWalk descends (one open descriptor
// per level).
const maxChownDepth = 1024

// chowner is one chownWalk.
type chowner struct {
	uid, gid        int
	skipCharDevices bool
}

// dir gives directory fd (path p, for errors) and everything under it to
// w's ids, and closes fd.
func (w chowner) dir(fd int, p string, depth int) error {
	f := os.NewFile(uintptr(fd), p) // closes fd
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	if int(st.Uid) != w.uid || int(st.Gid) != w.gid {
		if err := unix.Fchown(fd, w.uid, w.gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	if depth >= maxChownDepth {
		return fmt.Errorf("chown %s: directories nested deeper than %d", p, maxChownDepth)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	for _, name := range names {
		if err := w.entry(fd, p, name, depth); err != nil {
			return err
		}
	}
	return nil
}

// entry gives name in directory fd (path p) to w's ids: a directory with
// its contents, anything else (a symlink itself) alone.
func (w chowner) entry(fd int, p, name string, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed while walking
		}
		return fmt.Errorf("chown %s/%s: %w", p, name, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case err == nil:
			return w.dir(cfd, p+"/"+name, depth+1)
		case errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP):
			return fmt.Errorf("chown %s/%s: %w", p, name, err)
		}
		// Swapped for something else since the stat: change that alone.
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil
		}
	}
	if int(st.Uid) == w.uid && int(st.Gid) == w.gid || w.skipCharDevices && st.Mode&unix.S_IFMT == unix.S_IFCHR {
		return nil
	}
	if err := unix.Fchownat(fd, name, w.uid, w.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("chown %s/%s: %w", p, name, err)
	}
	return nil
}

// HostWorkspace reports that this tier mounts Spec.HostWorkspace
// (sandbox.HostWorkspacer).
func (t *Tier) HostWorkspace() bool { return true }
