//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Image templates (see sandbox.Images). The layers live on the host,
// owned by the ids the image names (root is 0). The host opens an idmapped
// clone of each layer for the sandbox's user namespace, so file owners
// inside the sandbox are the image's own (the image's root is the
// sandbox's unprivileged root, and the sandbox user sees the image's
// permissions), layers stay read-only mounts, and no file is ever chowned
// per sandbox. One more idmapped mount carries the sandbox's own upper/
// and work/ dirs. Init moves the mounts into its namespace and stacks an
// overlay on them (unprivileged overlay in a user namespace, with
// user.overlay.* xattrs): every write lands in the sandbox's upper dir.

// imageSetup makes the sandbox's writable dir, its upper dir a copy of
// seedUpper if set, and the idmapped mounts of layers (bottom first) and
// of that dir. The caller closes the files.
func (t *Tier) imageSetup(b *box, layers []string, seedUpper string) (*setupConfig, []*os.File, error) {
	if len(layers) == 0 || len(layers)+1 > maxSetupFiles {
		return nil, nil, fmt.Errorf("image template: %d layers (want 1 to %d)", len(layers), maxSetupFiles-1)
	}
	if err := os.MkdirAll(t.rwDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("overlay dir: %w", err)
	}
	rw, err := os.MkdirTemp(t.rwDir, "rw-")
	if err != nil {
		return nil, nil, fmt.Errorf("overlay dir: %w", err)
	}
	b.rwDir = rw
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(rw, d), 0o755); err != nil {
			return nil, nil, fmt.Errorf("overlay dir: %w", err)
		}
	}
	if seedUpper != "" { // before the overlay is mounted on it
		if err := sandbox.CopyUpper(seedUpper, filepath.Join(rw, "upper")); err != nil {
			return nil, nil, fmt.Errorf("overlay dir: copy saved upper dir: %w", err)
		}
	}
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", b.pid))
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox user namespace: %w", err)
	}
	defer userns.Close()
	var files []*os.File
	for i, dir := range append(layers[:len(layers):len(layers)], rw) {
		f, err := idmappedMount(dir, int(userns.Fd()), i < len(layers))
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, err
		}
		files = append(files, f)
	}
	return &setupConfig{RootDir: t.rootDir, ShmMB: sandbox.ShmMB, Layers: len(layers)}, files, nil
}

// idmappedMount returns a detached clone of dir's mount, idmapped into the
// user namespace userns (and read-only when readOnly).
func idmappedMount(dir string, userns int, readOnly bool) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_tree %s: %w", dir, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, Userns_fd: uint64(userns)}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("idmap %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// UpperDir is the host directory of an image sandbox's overlay upper dir
// ("" for the host template): sandbox.UpperHolder.
func (b *box) UpperDir() string {
	if b.rwDir == "" {
		return ""
	}
	return filepath.Join(b.rwDir, "upper")
}

// removeRW deletes a sandbox's overlay upper and work dirs.
func (b *box) removeRW() {
	if b.rwDir == "" {
		return
	}
	if err := os.RemoveAll(b.rwDir); err != nil {
		b.tier.log.Warn("remove sandbox overlay", "dir", b.rwDir, "err", err)
	}
}
