// Package clusterhttp serves the cluster's routes: GET /v1/cluster/status
// (the members as this node sees them, their health, versions and the
// partitions each owns) and POST /v1/node/drain (hand this node's
// partitions to the others before a restart). Outside a cluster both
// answer 409; before the node's member runs, 503 with Retry-After.
package clusterhttp

import (
	"context"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/httpapi"
)

// DrainTimeout bounds POST /v1/node/drain.
const DrainTimeout = 60 * time.Second

// Config is what the routes report on.
type Config struct {
	// Cluster and Node name the cluster ("" outside one) and this node.
	Cluster, Node string
	// Replicas is how many copies of each bucket the cluster keeps.
	Replicas int
	// Member is the running member (nil outside a cluster and before it
	// starts).
	Member func() *cluster.Member
	// StepDown hands the store streams this node leads to other members
	// once a drain has handed its partitions off (store.StepDownLeaders),
	// so its restart costs the others no election; nil: nothing to do.
	StepDown func(ctx context.Context) (int, error)
}

// Handler serves the routes.
type Handler struct{ cfg Config }

// New returns the routes of cfg.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// Routes registers the routes on r.
func (h *Handler) Routes(r *httpapi.Router) {
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/cluster/status", Tag: "cluster", Action: "status.read",
		Summary:  "The cluster as this node sees it: members, health, versions and the partitions each owns.",
		Response: api.ClusterStatus{}, Handler: h.status})
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/node/drain", Tag: "cluster", // admins only
		Summary:  "Hand every partition of this node to the other members (before a restart); it keeps forwarding.",
		Response: api.NodeDrain{}, Handler: h.drain})
}

// member is the running member; a 409 problem outside a cluster, 503
// before the member runs.
func (h *Handler) member() (*cluster.Member, error) {
	if h.cfg.Cluster == "" {
		return nil, api.Errorf(api.KindConflict, "node %s is not a member of a cluster: start it with serve --cluster NAME", h.cfg.Node)
	}
	if h.cfg.Member != nil {
		if m := h.cfg.Member(); m != nil {
			return m, nil
		}
	}
	p := api.Errorf(api.KindUnavailable, "this node has not joined its cluster yet: retry in a second")
	p.RetryAfterSeconds = 1
	return nil, p
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) error {
	m, err := h.member()
	if err != nil {
		return err
	}
	st := api.ClusterStatus{Cluster: h.cfg.Cluster, Node: h.cfg.Node, Partitions: m.Partitions(), Replicas: h.cfg.Replicas}
	owned := map[string]int{}
	for p := range m.Partitions() {
		if node, _, ok := m.OwnerOf(p); ok {
			owned[node]++
		} else {
			st.Unowned++
		}
	}
	for _, mi := range m.Members() {
		st.Members = append(st.Members, api.ClusterMember{Node: mi.Node, API: mi.API, Peer: mi.Addr, Version: mi.Version,
			Healthy: mi.Live, Draining: mi.Draining, Partitions: owned[mi.Node]})
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

func (h *Handler) drain(w http.ResponseWriter, r *http.Request) error {
	m, err := h.member()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), DrainTimeout)
	defer cancel()
	err = m.Drain(ctx)
	res := api.NodeDrain{Node: h.cfg.Node, Partitions: m.OwnedCount()}
	if err != nil {
		return api.Errorf(api.KindUnavailable, "drain of %s: %d partitions left after %v: %v", h.cfg.Node, res.Partitions, DrainTimeout, err)
	}
	if h.cfg.StepDown != nil {
		if _, err := h.cfg.StepDown(ctx); err != nil {
			p := api.Errorf(api.KindUnavailable, "drain of %s: partitions handed off, but the store streams it leads could not be handed to other members: %v", h.cfg.Node, err)
			p.RetryAfterSeconds = 1
			return p
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}
