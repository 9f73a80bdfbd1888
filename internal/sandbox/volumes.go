package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// VolumeMount is one named volume mounted into a sandbox
// (internal/sandbox/volume keeps the volumes). The tier mounts HostDir at
// Path; files in it keep their owners across sandboxes (the process tier
// maps the volume's ids into each sandbox's user namespace).
type VolumeMount struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// HostDir is the volume's data directory on the host; LimitBytes its
	// quota, checked with the workspace quota (Manager.CheckQuotas).
	HostDir    string `json:"host_dir"`
	LimitBytes int64  `json:"limit_bytes"`
}

// VolumeRef is one volume a sandbox asks for: its owner's volume Name at
// Path, read-only or not (no host paths: internal/sandbox/volume resolves
// it). A snapshot keeps its sandbox's mounts in this form.
type VolumeRef struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Authorization of volumes (Cedar resource type Volume: its id is the
// volume's name, its parent the owner, in whose namespace it is named).
const (
	ActionVolumeMount = "volume.mount"
	TypeVolume        = "Volume"
)

// AuthorizeMount decides whether the caller may mount owner's volume
// name (volume.mount on Volume name, parent owner). It returns the
// authorizer's problem to deny.
type AuthorizeMount func(ctx context.Context, owner, name string) error

// MaxVolumes caps the volumes one sandbox mounts.
const MaxVolumes = 8

// VolumeRoots are the directories a volume may be mounted below: a
// subdirectory of /workspace, or /mnt/NAME.
var VolumeRoots = []string{WorkspaceDir, "/mnt"}

// ErrBadMountPath: a volume mount path is not a clean path below one of
// VolumeRoots.
var ErrBadMountPath = errors.New("bad volume mount path")

// CheckMountPath validates a volume mount path: absolute, already clean (no
// "..", ".", "//" or trailing "/"), strictly below /workspace or /mnt,
// made of [A-Za-z0-9._-] components, at most 4 deep and 200 bytes. It never
// allows / itself, /workspace, /tmp, /proc, /dev, /sys or an image's own
// directories.
func CheckMountPath(p string) error {
	if len(p) == 0 || len(p) > 200 || !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("%w %q: want a clean absolute path such as /workspace/data or /mnt/data", ErrBadMountPath, p)
	}
	parts := strings.Split(p[1:], "/")
	if len(parts) < 2 || len(parts) > 5 {
		return fmt.Errorf("%w %q: want a directory below /workspace or /mnt, at most 4 levels deep", ErrBadMountPath, p)
	}
	if "/"+parts[0] != WorkspaceDir && "/"+parts[0] != "/mnt" {
		return fmt.Errorf("%w %q: volumes mount only below /workspace or /mnt", ErrBadMountPath, p)
	}
	for _, c := range parts[1:] {
		if c == "." || c == ".." || strings.Trim(c, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("%w %q: path components may use only A-Z a-z 0-9 . _ -", ErrBadMountPath, p)
		}
	}
	return nil
}

// CheckMounts validates the mount set of one sandbox: each path (see
// CheckMountPath), at most MaxVolumes, no volume twice, and no path at or
// below another (a mount would hide or nest in another).
func CheckMounts(ms []VolumeMount) error {
	if len(ms) > MaxVolumes {
		return fmt.Errorf("%w: %d volumes, at most %d", ErrBadMountPath, len(ms), MaxVolumes)
	}
	for i, m := range ms {
		if err := CheckMountPath(m.Path); err != nil {
			return err
		}
		for _, o := range ms[:i] {
			if o.Name == m.Name {
				return fmt.Errorf("%w: volume %q is mounted twice", ErrBadMountPath, m.Name)
			}
			if o.Path == m.Path || strings.HasPrefix(m.Path, o.Path+"/") || strings.HasPrefix(o.Path, m.Path+"/") {
				return fmt.Errorf("%w: %s and %s overlap", ErrBadMountPath, o.Path, m.Path)
			}
		}
	}
	return nil
}

// VolumeMounter is implemented by tiers that mount Spec.Volumes. A spec
// with volumes on another tier is refused (ErrUnsupported).
type VolumeMounter interface {
	MountsVolumes() bool
}

// VolumePreparer is implemented by tiers that mount volumes only when a
// sandbox is prepared (the gVisor tier: its mounts are fixed when the
// container starts). A spec with volumes on such a tier skips the warm
// pool.
type VolumePreparer interface {
	PrepareWithVolumes(ctx context.Context, template string, vols []VolumeMount) (Prepared, error)
}

func (m *Manager) mountsVolumes(tier string) bool {
	if _, ok := m.tiers[tier].(VolumePreparer); ok {
		return true
	}
	vm, ok := m.tiers[tier].(VolumeMounter)
	return ok && vm.MountsVolumes()
}

// overVolumeQuota says which of spec's volumes is over its quota ("" when
// none is).
func overVolumeQuota(spec Spec) (string, error) {
	for _, v := range spec.Volumes {
		used, err := DiskUsage(v.HostDir)
		if err != nil {
			return "", err
		}
		if used > v.LimitBytes {
			return fmt.Sprintf("volume %s uses %d MiB, over its limit of %d MiB: remove files, then resume", v.Name, used>>20, v.LimitBytes>>20), nil
		}
	}
	return "", nil
}

// checkVolumes refuses a spec whose volumes this tier cannot mount, whose
// mount paths are bad, or one of whose volumes is already over its quota.
func (m *Manager) checkVolumes(spec Spec) error {
	if len(spec.Volumes) == 0 {
		return nil
	}
	if !m.mountsVolumes(spec.Tier) {
		return fmt.Errorf("tier %s does not mount volumes: %w", spec.Tier, ErrUnsupported)
	}
	if err := CheckMounts(spec.Volumes); err != nil {
		return err
	}
	over, err := overVolumeQuota(spec)
	if err != nil {
		return fmt.Errorf("volume usage: %w", err)
	}
	if over != "" {
		return fmt.Errorf("%w: %s", ErrDiskLimit, over)
	}
	return nil
}
