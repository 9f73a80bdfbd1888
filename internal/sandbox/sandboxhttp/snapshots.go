package sandboxhttp

import (
	"context"
	"errors"
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/snapshot"
)

// TypeSnapshot is the authorization resource type of a snapshot; its
// owner is the owner of the sandbox it was taken from.
const TypeSnapshot = "Snapshot"

func snapshotResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: TypeSnapshot, ID: r.PathValue("snapshot")}
}

// snapshotRoutes registers the snapshot endpoints when the daemon keeps
// snapshots (Config.Snapshots).
func (h *Handler) snapshotRoutes(add func(httpapi.Route)) {
	if h.cfg.Snapshots == nil {
		return
	}
	add(httpapi.Route{Method: "POST", Path: "/v1/sandboxes/{sandbox}/snapshots", Action: ActionManage, Status: http.StatusCreated,
		Summary:  "Snapshot the sandbox: a copy of its /workspace, on an image template of what it changed in its root, and, on the gVisor tier, its memory state (memory says which).",
		Response: api.Snapshot{}, Handler: h.handleSnapshot})
	add(httpapi.Route{Method: "GET", Path: "/v1/snapshots", Action: ActionList, Summary: "List the snapshots the caller may read.",
		Response: api.SnapshotList{}, Handler: h.handleListSnapshots})
	add(httpapi.Route{Method: "GET", Path: "/v1/snapshots/{snapshot}", Action: ActionRead, Resource: snapshotResource,
		Summary: "Show one snapshot.", Response: api.Snapshot{}, Handler: h.handleGetSnapshot})
	add(httpapi.Route{Method: "DELETE", Path: "/v1/snapshots/{snapshot}", Action: ActionDelete, Resource: snapshotResource,
		Status: http.StatusNoContent, Summary: "Delete a snapshot and its files.", Handler: h.handleDeleteSnapshot})
	add(httpapi.Route{Method: "POST", Path: "/v1/snapshots/{snapshot}/restore", Action: ActionCreate, Resource: snapshotResource,
		Status: http.StatusCreated, Response: api.Sandbox{}, Handler: h.handleRestore,
		Summary: "Make a new sandbox from a snapshot: its files, and its memory state when the snapshot has it."})
}

func (h *Handler) handleSnapshot(w http.ResponseWriter, r *http.Request) error {
	rec, err := h.cfg.Snapshots.Create(r.Context(), r.PathValue("sandbox"))
	if err != nil {
		return snapshotProblem(err)
	}
	w.Header().Set("Location", "/v1/snapshots/"+rec.ID)
	httpapi.WriteJSON(w, http.StatusCreated, wireSnapshot(rec))
	return nil
}

func (h *Handler) handleListSnapshots(w http.ResponseWriter, r *http.Request) error {
	recs, err := h.cfg.Snapshots.List(r.Context())
	if err != nil {
		return err
	}
	out := api.SnapshotList{Snapshots: make([]api.Snapshot, 0, len(recs))}
	for _, rec := range recs {
		if h.cfg.SnapshotVisible != nil && !h.cfg.SnapshotVisible(r, rec.ID) {
			continue
		}
		out.Snapshots = append(out.Snapshots, wireSnapshot(rec))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) handleGetSnapshot(w http.ResponseWriter, r *http.Request) error {
	rec, err := h.cfg.Snapshots.Get(r.Context(), r.PathValue("snapshot"))
	if err != nil {
		return snapshotProblem(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, wireSnapshot(rec))
	return nil
}

func (h *Handler) handleDeleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	if err := h.cfg.Snapshots.Delete(r.Context(), r.PathValue("snapshot")); err != nil {
		return snapshotProblem(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) handleRestore(w http.ResponseWriter, r *http.Request) error {
	sb, _, err := h.cfg.Snapshots.Restore(r.Context(), r.PathValue("snapshot"),
		func(_ context.Context, rec snapshot.Record) ([]sandbox.VolumeMount, func(), error) {
			// The sandbox is the snapshot owner's again, so are its volumes;
			// the caller needs volume.mount on each.
			return h.resolveVolumes(r, rec.Owner, rec.Volumes)
		})
	if err != nil {
		return snapshotProblem(err)
	}
	out, err := h.describe(sb.ID())
	if err != nil {
		return problemFor(err)
	}
	w.Header().Set("Location", "/v1/sandboxes/"+out.ID)
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// snapshotProblem maps the snapshot service's errors, then the Manager's.
func snapshotProblem(err error) error {
	switch {
	case errors.Is(err, snapshot.ErrNotFound):
		return api.Errorf(api.KindNotFound, "%v: list snapshots with GET /v1/snapshots", err)
	case errors.Is(err, snapshot.ErrQuota):
		return api.Errorf(api.KindSandboxLimit, "%v", err)
	case errors.Is(err, snapshot.ErrBusy):
		return api.Errorf(api.KindConflict, "%v", err)
	}
	return problemFor(err)
}

func wireSnapshot(rec snapshot.Record) api.Snapshot {
	l := rec.Limits
	return api.Snapshot{ID: rec.ID, Sandbox: rec.Sandbox, Owner: rec.Owner, Tier: rec.Tier, Template: rec.Template,
		Limits: api.SandboxLimits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, DiskMB: l.DiskMB},
		Memory: rec.Memory, Note: rec.Note, Bytes: rec.Bytes, Created: rec.Created.UTC(), Volumes: wireVolumes(rec.Volumes)}
}
