//go:build linux

package sbinit

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// VolumeMount is what init needs of one named volume: where, and whether
// the sandbox may write (read-only is already set on the mount by the
// host, which passes the volume's idmapped mount with the activate
// message).
type VolumeMount struct {
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// mountVolumes runs in init, as root of the sandbox's namespace, after
// mountWritable and before anything of the caller runs: it makes each
// mount point (refusing a symlink or a file on the way: a workspace kept
// from an earlier run is the sandbox's own writing) and moves the volume's
// mount onto it. Paths below /mnt live on a small tmpfs made read-only
// once the mount points exist.
func mountVolumes(vols []VolumeMount, files []*os.File) error {
	if len(files) != len(vols) {
		return fmt.Errorf("volumes: %d mounts for %d volumes", len(files), len(vols))
	}
	mnt := false
	for _, v := range vols {
		if strings.HasPrefix(v.Path, "/mnt/") && !mnt {
			mnt = true
			if err := unix.Mount("sandbox-mnt", "/mnt", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
				return fmt.Errorf("volumes: mount /mnt: %w", err)
			}
		}
	}
	for i, v := range vols {
		if err := mountPoint(v.Path); err != nil {
			return err
		}
		if err := unix.MoveMount(int(files[i].Fd()), "", unix.AT_FDCWD, v.Path, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("attach volume on %s: %w", v.Path, err)
		}
	}
	if mnt {
		if err := unix.Mount("", "/mnt", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("volumes: remount /mnt read-only: %w", err)
		}
	}
	return nil
}

// mountPoint makes directory p and its parents below its root (/workspace
// or /mnt), refusing any existing component that is not a directory.
func mountPoint(p string) error {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/" + parts[0]
	for _, c := range parts[1:] {
		cur = path.Join(cur, c)
		fi, err := os.Lstat(cur)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("volume mount point %s: %w", cur, err)
			}
			if err := os.Lchown(cur, SandboxUID, SandboxGID); err != nil {
				return fmt.Errorf("volume mount point %s: %w", cur, err)
			}
		case err != nil:
			return fmt.Errorf("volume mount point %s: %w", cur, err)
		case !fi.IsDir():
			return fmt.Errorf("volume mount point %s: it exists and is not a directory", cur)
		}
	}
	return nil
}

// volumePaths are the writable volumes' paths, for landlock.
func volumePaths(vols []VolumeMount) []string {
	var out []string
	for _, v := range vols {
		if !v.ReadOnly {
			out = append(out, v.Path)
		}
	}
	return out
}
