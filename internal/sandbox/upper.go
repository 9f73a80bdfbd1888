package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Image templates' writable layer (upper.go): a sandbox of an image
// template writes outside /workspace into an overlay's upper dir, where
// overlayfs records a deleted file as a whiteout (a 0/0 character device)
// and a directory removed and made again as opaque (an xattr). A snapshot
// or fork keeps that dir, whiteouts and all, so a file deleted in the
// sandbox stays deleted in the copy.

// UpperHolder is implemented by live sandboxes of image templates whose
// overlay upper dir is a host directory (the process and gVisor tiers).
// UpperDir is "" for a sandbox without one (the host template).
type UpperHolder interface {
	UpperDir() string
}

// UpperPreparer is implemented by tiers that can prepare a sandbox of an
// image template whose upper dir starts as a copy of upper (CopyUpper).
// Such a sandbox skips the warm pool. vols are the sandbox's volumes, for
// a tier that mounts them when a sandbox is prepared (VolumePreparer);
// other tiers ignore them.
type UpperPreparer interface {
	PrepareWithUpper(ctx context.Context, template, upper string, vols []VolumeMount) (Prepared, error)
}

// SnapshotUpper is a snapshot directory's copy of the overlay upper dir.
const SnapshotUpper = "upper"

// opaqueXattrs mark a directory of an upper dir that hides the lower
// layers' (overlayfs in a user namespace uses the user.* one).
var opaqueXattrs = []string{"user.overlay.opaque", "trusted.overlay.opaque"}

// CopyUpper copies the overlay upper dir src into dst (which exists)
// keeping what overlayfs reads: regular files, directories and symlinks
// with their owners and permission bits (set-id bits dropped), whiteouts
// (0/0 character devices) and opaque markers. Any other device, fifo or
// socket, and any other xattr, is skipped: the copy never holds a device
// a sandbox could open.
func CopyUpper(src, dst string) error {
	return walkInto(src, dst, func(from, to string, _ fs.DirEntry) error {
		return copyUpperEntry(from, to)
	})
}

func copyUpperEntry(from, to string) error {
	var st unix.Stat_t
	if err := unix.Lstat(from, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // removed while walking
		}
		return fmt.Errorf("upper %s: %w", from, err)
	}
	perm := st.Mode & 0o1777 // no set-id bits
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(to, 0o700); err != nil {
			return err
		}
		v := make([]byte, 8)
		for _, x := range opaqueXattrs {
			n, err := unix.Lgetxattr(from, x, v)
			if err != nil {
				continue // not marked (ENODATA), or too long to be a marker
			}
			if err := unix.Lsetxattr(to, x, v[:n], 0); err != nil {
				return fmt.Errorf("upper %s: opaque marker: %w", to, err)
			}
		}
	case unix.S_IFREG:
		if err := copyFile(from, to, 0o600); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, to); err != nil {
			return err
		}
		return unix.Lchown(to, int(st.Uid), int(st.Gid))
	case unix.S_IFCHR:
		if st.Rdev != 0 {
			return nil // a device, not a whiteout
		}
		if err := unix.Mknod(to, unix.S_IFCHR|perm, 0); err != nil {
			return fmt.Errorf("upper %s: whiteout: %w", to, err)
		}
	default:
		return nil
	}
	if err := unix.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Chmod(to, perm)
}
