//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Named volumes (sandbox.VolumeMount). The host opens an idmapped clone of
// each volume's data dir for the sandbox's user namespace, as it does for
// image layers: the ids on disk are the sandbox's own (the volume's root
// belongs to the sandbox user), so two sandboxes, with different host
// uids, share one volume and see the same owners, and nothing is chowned.
// Init moves each mount onto its path after /workspace is in place.

// volumeMount is what init needs of one volume: where, and whether the
// sandbox may write (read-only is already set on the mount by the host).
type volumeMount struct {
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// MountsVolumes reports that this tier mounts Spec.Volumes
// (sandbox.VolumeMounter).
func (t *Tier) MountsVolumes() bool { return true }

// volumeTrees returns the idmapped, detached mounts of vols (in order)
// and what init needs to attach them. The caller closes the files.
func (b *box) volumeTrees(vols []sandbox.VolumeMount) ([]volumeMount, []*os.File, error) {
	if len(vols) == 0 {
		return nil, nil, nil
	}
	if err := sandbox.CheckMounts(vols); err != nil {
		return nil, nil, err
	}
	userns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", b.pid))
	if err != nil {
		return nil, nil, fmt.Errorf("sandbox user namespace: %w", err)
	}
	defer userns.Close()
	var (
		out   []volumeMount
		files []*os.File
	)
	for _, v := range vols {
		f, err := idmappedMount(v.HostDir, int(userns.Fd()), v.ReadOnly)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		files = append(files, f)
		out = append(out, volumeMount{Path: v.Path, ReadOnly: v.ReadOnly})
	}
	return out, files, nil
}

// mountVolumes runs in init, as root of the sandbox's namespace, after
// mountWritable and before anything of the caller runs: it makes each
// mount point (refusing a symlink or a file on the way: a workspace kept
// from an earlier run is the sandbox's own writing) and moves the volume's
// mount onto it. Paths below /mnt live on a small tmpfs made read-only
// once the mount points exist.
func mountVolumes(vols []volumeMount, files []*os.File) error {
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
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("volume mount point %s: %w", cur, err)
			}
			if err := os.Lchown(cur, sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
				return fmt.Errorf("volume mount point %s: %w", cur, err)
			}
		case err != nil:
			return fmt.Errorf("volume mount point %s: %w", cur, err)
		case !fi.IsDir():
			return fmt.Errorf("volume mount point %s: %w: it exists and is not a directory", cur, sandbox.ErrBadMountPath)
		}
	}
	return nil
}

// volumePaths are the writable volumes' paths, for landlock.
func volumePaths(vols []volumeMount) []string {
	var out []string
	for _, v := range vols {
		if !v.ReadOnly {
			out = append(out, v.Path)
		}
	}
	return out
}
