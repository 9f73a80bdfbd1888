//go:build linux

package process

import (
	"fmt"
	"os"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

// Named volumes (sandbox.VolumeMount). The host opens an idmapped clone of
// each volume's data dir for the sandbox's user namespace, as it does for
// image layers: the ids on disk are the sandbox's own (the volume's root
// belongs to the sandbox user), so two sandboxes, with different host
// uids, share one volume and see the same owners, and nothing is chowned.
// Init moves each mount onto its path after /workspace is in place.

// MountsVolumes reports that this tier mounts Spec.Volumes
// (sandbox.VolumeMounter).
func (t *Tier) MountsVolumes() bool { return true }

// volumeTrees returns the idmapped, detached mounts of vols (in order)
// and what init needs to attach them. The caller closes the files.
func (b *box) volumeTrees(vols []sandbox.VolumeMount) ([]sbinit.VolumeMount, []*os.File, error) {
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
		out   []sbinit.VolumeMount
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
		out = append(out, sbinit.VolumeMount{Path: v.Path, ReadOnly: v.ReadOnly})
	}
	return out, files, nil
}
