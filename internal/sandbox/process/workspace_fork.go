//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// A fork copy's host workspace is an overlay the Manager mounted: the
// fork's frozen layer below, the copy's own upper dir above
// (sandbox.ForkLayerOf). Giving its files to the sandbox's host uid with a
// chown made a metadata copy-up of every file of the layer, per copy (a
// fork of 100 copies of a 64-file workspace spent most of its time there).
// The layer's files are stored as the in-sandbox user
// (sandbox.SandboxUID), so at activation the tier mounts the overlay again
// with an idmapped clone of the layer (the sandbox's user namespace: the
// files show as the sandbox's host uid) as its lower layer and the same
// upper and work dirs, plain, and puts it in place of the Manager's mount:
// the host and the sandbox see one overlay, nothing is copied up at start,
// and what the sandbox writes lands in its upper dir as its host uid, as
// in any host workspace. Only the upper dir, the copy's own writes, is
// chowned (to a new uid after a restart). The layer is read-only in an
// overlay: no id of the sandbox's user namespace writes through the
// idmapping. Where the kernel refuses any of it, the copy's files are
// chowned through the overlay as before (forkIdmapOff).

// forkIdmap is a fork overlay's state for one tier: 0 not tried yet, 1
// works, 2 refused (chown through the overlay instead).
type forkIdmap struct{ state atomic.Int32 }

const (
	forkIdmapUnknown = iota
	forkIdmapOn
	forkIdmapOff
)

// idmapForkLayer is idmappedMount; tests make it refuse, as a kernel or a
// data filesystem without idmapped mounts does.
var idmapForkLayer = idmappedMount

// errNoIdmap marks what a kernel or filesystem without idmapped overlay
// layers refuses.
var errNoIdmap = errors.New("idmapped fork layer not supported")

// forkWorkspaceTree is workspaceTree for the fork copy's workspace dir
// over layer fl: the detached mount for init, after mounting dir again
// over an idmapped layer; ok false means "not done here, chown the tree"
// (the kernel refused, now or before), with dir's plain overlay in place.
func (b *box) forkWorkspaceTree(dir string, fl sandbox.ForkLayer) (f *os.File, ok bool, err error) {
	if b.tier.forkIdmap.state.Load() == forkIdmapOff {
		return nil, false, ensurePlainForkOverlay(dir, fl)
	}
	f, err = b.idmappedForkOverlay(dir, fl)
	switch {
	case err == nil:
		b.tier.forkIdmap.state.CompareAndSwap(forkIdmapUnknown, forkIdmapOn)
		return f, true, nil
	case errors.Is(err, errNoIdmap): // the plain overlay is mounted again
		if b.tier.forkIdmap.state.CompareAndSwap(forkIdmapUnknown, forkIdmapOff) {
			b.tier.log.Info("fork copies' workspaces are chowned per copy: their layer cannot be idmapped", "err", err)
		}
		// The refusal may have come before anything was unmounted or
		// before the plain overlay was put back: never chown and hand
		// init a bare directory as the workspace.
		return nil, false, ensurePlainForkOverlay(dir, fl)
	}
	return nil, false, err
}

// idmappedForkOverlay mounts on dir (in place of what is mounted there:
// the Manager's plain overlay of a kept copy) an overlay whose lower layer
// is fl.Lower idmapped into the sandbox's user namespace, after giving the
// upper dir to the sandbox's host uid (no overlay is mounted on it then),
// and returns a detached clone of the new mount. On an error the plain
// overlay is mounted on dir.
func (b *box) idmappedForkOverlay(dir string, fl sandbox.ForkLayer) (_ *os.File, err error) {
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", b.pid))
	if err != nil {
		return nil, fmt.Errorf("sandbox user namespace: %w", err)
	}
	defer userns.Close()
	lower, err := idmapForkLayer(fl.Lower, int(userns.Fd()), true)
	if err != nil {
		return nil, noIdmap(err)
	}
	defer lower.Close()
	if err := sandbox.UnmountAll(dir); err != nil {
		return nil, fmt.Errorf("fork overlay: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := fl.Mount(dir); rerr != nil {
				b.tier.log.Warn("mount fork workspace again", "dir", dir, "err", rerr)
			}
		}
	}()
	if err := chownUpper(fl.Upper, b.hostUID, b.hostGID); err != nil {
		return nil, fmt.Errorf("fork overlay: %w", err)
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, noIdmap(fmt.Errorf("fsopen overlay: %w", err))
	}
	defer unix.Close(fsfd)
	for _, kv := range [][2]string{{"source", sandbox.ForkMountSource}, {"upperdir", fl.Upper}, {"workdir", fl.Work},
		{"redirect_dir", "on"}, {"metacopy", "on"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return nil, noIdmap(fmt.Errorf("fork overlay %s: %w", kv[0], err))
		}
	}
	if err := unix.FsconfigSetFd(fsfd, "lowerdir+", int(lower.Fd())); err != nil {
		return nil, noIdmap(fmt.Errorf("fork overlay lowerdir+: %w", err))
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, noIdmap(fmt.Errorf("fork overlay: create: %w", err))
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, fmt.Errorf("fork overlay: fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return nil, fmt.Errorf("fork overlay: move_mount %s: %w", dir, err)
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH) // the deferred remount puts the plain one back
		return nil, fmt.Errorf("workspace %s: open_tree: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// MountsForkLayers reports that the tier mounts fork copies' workspace
// overlays itself (sandbox.ForkLayerMounter).
func (t *Tier) MountsForkLayers() bool { return true }

// ensurePlainForkOverlay mounts fl's plain overlay on dir unless dir is a
// mount point already (the Manager mounted it when it loaded a kept copy).
func ensurePlainForkOverlay(dir string, fl sandbox.ForkLayer) error {
	if sandbox.IsMountPoint(dir) {
		return nil
	}
	if err := fl.Mount(dir); err != nil {
		return fmt.Errorf("fork overlay: %w", err)
	}
	return nil
}

// chownUpper gives the files of an overlay upper dir (the dir included)
// to uid:gid, as chownTree does, but leaves whiteouts (character devices
// 0/0, which overlayfs reads by type only) as they are.
func chownUpper(upper string, uid, gid int) error {
	return chownWalk(upper, uid, gid, true)
}

// noIdmap marks err as "the kernel cannot do this" where it is one of the
// errors a kernel or filesystem without the feature gives.
func noIdmap(err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOVERFLOW) {
		return fmt.Errorf("%w: %w", errNoIdmap, err)
	}
	return err
}
