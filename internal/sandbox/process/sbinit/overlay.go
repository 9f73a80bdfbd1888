//go:build linux

package sbinit

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOverlay runs in init: it moves the layer mounts (files, bottom first,
// then the writable dir) under staging and mounts the overlay root at
// staging/root, which it returns.
func mountOverlay(staging string, layers int, files []*os.File) (string, error) {
	if layers <= 0 || len(files) != layers+1 {
		return "", fmt.Errorf("image root: %d mounts for %d layers", len(files), layers)
	}
	lower := make([]string, layers)
	for i, f := range files {
		dir := path.Join(staging, fmt.Sprintf("l%d", i))
		if i == layers {
			dir = path.Join(staging, "rw")
		} else {
			lower[layers-1-i] = dir // overlayfs lists the top layer first
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", err
		}
		if err := unix.MoveMount(int(f.Fd()), "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return "", fmt.Errorf("move layer mount: %w", err)
		}
	}
	root := path.Join(staging, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	rw := path.Join(staging, "rw")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work,userxattr", strings.Join(lower, ":"), rw, rw)
	if err := unix.Mount("sandbox-root", root, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return "", fmt.Errorf("mount overlay root: %w", err)
	}
	return root, nil
}
