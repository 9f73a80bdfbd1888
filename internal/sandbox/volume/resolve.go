package volume

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Authorization of volumes (sandbox.ActionVolumeMount, sandbox.TypeVolume).
const (
	ActionMount = sandbox.ActionVolumeMount
	TypeVolume  = sandbox.TypeVolume
)

// Mount is one volume a sandbox asks for (sandbox.VolumeRef).
type Mount = sandbox.VolumeRef

// MountsOf gives the Mount form of a sandbox's volumes (no host paths).
func MountsOf(vs []sandbox.VolumeMount) []Mount {
	var out []Mount
	for _, v := range vs {
		out = append(out, Mount{Name: v.Name, Path: v.Path, ReadOnly: v.ReadOnly})
	}
	return out
}

// AuthorizeMount decides whether the caller may mount owner's volume
// name (sandbox.AuthorizeMount).
type AuthorizeMount = sandbox.AuthorizeMount

// Resolve is the one check of the volumes a new sandbox mounts, whoever
// makes it (POST /v1/sandboxes, a restore, a fork, env.sandbox.run): at
// most sandbox.MaxVolumes, each name a volume id and each path a mount
// path (CheckMountPath), authz allows each (nil: the caller vouches), each
// exists in owner's namespace, and the set does not overlap
// (sandbox.CheckMounts). It holds the volumes against deletion until
// release is called (after the create, done or failed). Errors are
// problems naming the field (volumes[i].name, volumes[i].path) or the
// volume; release is never nil.
func (s *Store) Resolve(ctx context.Context, owner string, ms []Mount, authz AuthorizeMount) (vols []sandbox.VolumeMount, release func(), err error) {
	release = func() {}
	if len(ms) == 0 {
		return nil, release, nil
	}
	if s == nil {
		return nil, release, api.FieldErrorf(api.KindValidation, "volumes", "this node keeps no volumes")
	}
	if len(ms) > sandbox.MaxVolumes {
		return nil, release, api.FieldErrorf(api.KindValidation, "volumes", "%d volumes: at most %d", len(ms), sandbox.MaxVolumes)
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		field := fmt.Sprintf("volumes[%d]", i)
		if p := api.CheckID(field+".name", api.IDVolume, m.Name); p != nil {
			return nil, release, p
		}
		if err := sandbox.CheckMountPath(m.Path); err != nil {
			return nil, release, api.FieldErrorf(api.KindValidation, field+".path", "%v", err)
		}
		if authz != nil {
			if err := authz(ctx, owner, m.Name); err != nil {
				return nil, release, err
			}
		}
		names[i] = m.Name
	}
	held, rel, err := s.Hold(owner, names)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, release, api.Errorf(api.KindNotFound, "%v (deleted, or not its owner's): list volumes with GET /v1/volumes", err)
		}
		return nil, release, err
	}
	for i, v := range held {
		vols = append(vols, sandbox.VolumeMount{Name: v.Name, Path: ms[i].Path, ReadOnly: ms[i].ReadOnly,
			HostDir: v.Dir, LimitBytes: v.LimitBytes})
	}
	if err := sandbox.CheckMounts(vols); err != nil {
		rel()
		return nil, release, api.FieldErrorf(api.KindValidation, "volumes", "%v", err)
	}
	return vols, rel, nil
}
