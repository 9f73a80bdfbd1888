package sandboxhttp

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/volume"
)

// Volume actions (Cedar resource type Volume, owned by its creator).
// Listing is open: a principal lists only its own volumes.
const (
	ActionVolumeCreate = "volume.create"
	ActionVolumeRead   = "volume.read"
	ActionVolumeDelete = "volume.delete"
	ActionVolumeMount  = volume.ActionMount
	ActionVolumeList   = "volume.list"
	// TypeVolume is the Cedar entity type of a volume; its id is the
	// volume's name and its parent the owner (names are per owner).
	TypeVolume = volume.TypeVolume
)

// volumeResource names the route's volume, in the caller's namespace.
func volumeResource(r *http.Request) httpapi.Resource {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return httpapi.Resource{Type: TypeVolume, ID: r.PathValue("volume"), Parent: p.ID}
}

// VolumeOwner is the owner lookup of Volume resources for the authorizer
// (security.OwnerFunc): a volume belongs to the principal in whose
// namespace (the resource's parent) it is named.
func VolumeOwner(st *volume.Store) func(ctx context.Context, name, owner string) (string, bool, error) {
	return func(_ context.Context, name, owner string) (string, bool, error) {
		return owner, st.Exists(owner, name), nil
	}
}

// volumeRoutes registers /v1/volumes when the node keeps volumes.
func (h *Handler) volumeRoutes(r *httpapi.Router) {
	st := h.cfg.Volumes
	if st == nil {
		return
	}
	add := func(rt httpapi.Route) {
		rt.Tag, rt.Handler = "volumes", h.guard(rt.Handler)
		if rt.Resource == nil {
			rt.Resource = volumeResource
		}
		r.Handle(rt)
	}
	const one = "/v1/volumes/{volume}"
	add(httpapi.Route{Method: "POST", Path: "/v1/volumes", Action: ActionVolumeCreate, Status: http.StatusCreated,
		Resource: func(r *http.Request) httpapi.Resource {
			p, _ := httpapi.PrincipalFrom(r.Context())
			return httpapi.Resource{Type: TypeVolume, Parent: p.ID} // a new one, the caller's
		},
		Summary: "Create a named persistent volume, owned by the caller, to mount into sandboxes (volumes: [{name, path}] on create).",
		Request: api.CreateVolumeRequest{}, Response: api.Volume{}, Handler: h.handleVolumeCreate})
	add(httpapi.Route{Method: "GET", Path: "/v1/volumes", Action: ActionVolumeList, Summary: "List the caller's volumes.",
		Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{} },
		Response: api.VolumeList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			p, _ := httpapi.PrincipalFrom(r.Context())
			out := api.VolumeList{Volumes: []api.Volume{}}
			for _, v := range st.List(p.ID) {
				out.Volumes = append(out.Volumes, h.volumeOut(v))
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
	add(httpapi.Route{Method: "GET", Path: one, Action: ActionVolumeRead, Summary: "Show one of the caller's volumes, with its disk use and the sandboxes that mount it.",
		Response: api.Volume{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			p, _ := httpapi.PrincipalFrom(r.Context())
			v, err := st.Get(p.ID, r.PathValue("volume"))
			if err != nil {
				return volumeProblem(err)
			}
			httpapi.WriteJSON(w, http.StatusOK, h.volumeOut(v))
			return nil
		}})
	add(httpapi.Route{Method: "DELETE", Path: one, Action: ActionVolumeDelete, Status: http.StatusNoContent,
		Summary: "Delete a volume and its files (refused while a sandbox mounts it).",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			p, _ := httpapi.PrincipalFrom(r.Context())
			if err := st.Delete(p.ID, r.PathValue("volume")); err != nil {
				return volumeProblem(err)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func (h *Handler) handleVolumeCreate(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateVolumeRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if p := api.CheckID("name", api.IDVolume, req.Name); p != nil {
		return p
	}
	max := h.cfg.Volumes.Limits().MaxBytes
	if req.SizeMB < 0 || req.SizeMB > max>>20 {
		return api.FieldErrorf(api.KindValidation, "size_mb", "size_mb %d: want 0 (the maximum) or from 1 to %d (volumes.max_bytes)", req.SizeMB, max>>20)
	}
	p, _ := httpapi.PrincipalFrom(r.Context())
	v, err := h.cfg.Volumes.Create(p.ID, req.Name, req.SizeMB<<20)
	if err != nil {
		return volumeProblem(err)
	}
	w.Header().Set("Location", "/v1/volumes/"+v.Name)
	httpapi.WriteJSON(w, http.StatusCreated, h.volumeOut(v))
	return nil
}

func (h *Handler) volumeOut(v volume.Volume) api.Volume {
	out := api.Volume{Name: v.Name, Owner: v.Owner, Created: v.Created, LimitBytes: v.LimitBytes}
	out.UsedBytes, _ = volume.Usage(v)
	if h.m != nil {
		out.MountedBy = volume.MountedBy(h.m.List)(v.Dir)
	}
	return out
}

// volumeProblem maps the volume store's errors to problems.
func volumeProblem(err error) error {
	switch {
	case errors.Is(err, volume.ErrNotFound):
		return api.Errorf(api.KindNotFound, "%v: list your volumes with GET /v1/volumes", err)
	case errors.Is(err, volume.ErrExists):
		return api.FieldErrorf(api.KindConflict, "name", "%v: delete it first or choose another name", err)
	case errors.Is(err, volume.ErrInUse):
		return api.Errorf(api.KindConflict, "%v: delete those sandboxes first", err)
	case errors.Is(err, volume.ErrQuota):
		return api.Errorf(api.KindSandboxLimit, "%v", err)
	}
	return err
}

// mountVolumes resolves a create request's volumes in the caller's
// namespace (volume.Store.Resolve: the one check every way of making a
// sandbox uses) and holds them against deletion until release.
func (h *Handler) mountVolumes(r *http.Request, req []api.SandboxVolume, spec *sandbox.Spec) (release func(), err error) {
	p, _ := httpapi.PrincipalFrom(r.Context())
	ms := make([]volume.Mount, len(req))
	for i, v := range req {
		ms[i] = volume.Mount{Name: v.Name, Path: v.Path, ReadOnly: v.ReadOnly}
	}
	vols, release, err := h.resolveVolumes(r, p.ID, ms)
	spec.Volumes = append(spec.Volumes, vols...)
	return release, err
}

// resolveVolumes checks and holds owner's volumes ms for a sandbox the
// caller makes (a create, a restore, a fork): the caller needs
// volume.mount on each of owner's volumes.
func (h *Handler) resolveVolumes(r *http.Request, owner string, ms []volume.Mount) ([]sandbox.VolumeMount, func(), error) {
	if len(ms) == 0 {
		return nil, func() {}, nil
	}
	if h.cfg.Volumes == nil {
		return nil, func() {}, api.FieldErrorf(api.KindValidation, "volumes", "this node keeps no volumes")
	}
	var authz volume.AuthorizeMount
	if h.cfg.Authorizer != nil {
		p, _ := httpapi.PrincipalFrom(r.Context())
		authz = func(ctx context.Context, owner, name string) error {
			return h.cfg.Authorizer.Authorize(ctx, p, ActionVolumeMount, httpapi.Resource{Type: TypeVolume, ID: name, Parent: owner})
		}
	}
	return h.cfg.Volumes.Resolve(r.Context(), owner, ms, authz)
}
