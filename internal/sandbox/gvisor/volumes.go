package gvisor

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Named volumes (sandbox.VolumeMount) on gVisor: a container's mounts are
// fixed when runsc starts it, so a sandbox with volumes is prepared for
// its spec (no warm pool) with each volume's host directory bind-mounted
// at its path (read-only when asked). The sentry runs programs as the
// sandbox user without a user namespace, so the volume's on-disk owner
// (the sandbox user's id) is the owner inside, as on the process tier.

var _ sandbox.VolumePreparer = (*Tier)(nil)

// PrepareWithVolumes prepares a sandbox of template with vols mounted.
func (t *Tier) PrepareWithVolumes(ctx context.Context, template string, vols []sandbox.VolumeMount) (sandbox.Prepared, error) {
	if err := sandbox.CheckMounts(vols); err != nil {
		return nil, fmt.Errorf("prepare gvisor sandbox: %w", err)
	}
	return t.prepare(ctx, template, "", vols)
}

// volumeMounts are the OCI mounts of vols.
func volumeMounts(vols []sandbox.VolumeMount) []specs.Mount {
	var out []specs.Mount
	for _, v := range vols {
		rw := "rw"
		if v.ReadOnly {
			rw = "ro"
		}
		out = append(out, specs.Mount{Destination: v.Path, Type: "bind", Source: v.HostDir, Options: []string{"rbind", rw, "nosuid", "nodev"}})
	}
	return out
}
