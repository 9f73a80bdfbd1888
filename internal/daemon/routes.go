package daemon

import (
	"context"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers the system endpoints; product packages add theirs.
func (d *Daemon) routes() {
	r := d.router
	r.Handle(httpapi.Route{Method: "GET", Path: "/healthz", Summary: "Liveness: the process serves HTTP.", Tag: "system",
		Public: true, Response: api.Health{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSON(w, http.StatusOK, api.Health{Status: "ok"})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/readyz", Summary: "Readiness: the daemon and its store can serve requests.", Tag: "system",
		Public: true, Response: api.Health{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if !d.ready.Load() || d.store == nil || d.store.Ping(ctx) != nil {
				httpapi.WriteJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable"})
				return nil
			}
			httpapi.WriteJSON(w, http.StatusOK, api.Health{Status: "ok"})
			return nil
		}})
	metrics := promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{})
	r.Handle(httpapi.Route{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics (text exposition format).", Tag: "system",
		RawContentType: "text/plain", Handler: func(w http.ResponseWriter, r *http.Request) error {
			metrics.ServeHTTP(w, r)
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/openapi.json", Summary: "OpenAPI 3.1 document of every route (public; ETag and If-None-Match).", Tag: "system",
		Public: true, Response: map[string]any{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSONConditional(w, r, d.router.OpenAPI("agentcloud", version.Get().Version))
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/status", Summary: "Daemon health, version, uptime and store statistics.", Tag: "system", Action: "status.read",
		Response: api.Status{}, Handler: d.handleStatus})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/whoami", Summary: "The authenticated principal of this request.", Tag: "system", Action: "whoami",
		Response: api.WhoAmI{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			p, _ := httpapi.PrincipalFrom(r.Context())
			httpapi.WriteJSON(w, http.StatusOK, api.WhoAmI{Principal: p.ID, Kind: p.Kind})
			return nil
		}})
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	v := version.Get()
	st := api.Status{
		Version: v.Version, Commit: v.Commit, GoVersion: v.GoVersion, NodeID: d.cfg.NodeID,
		StartedAt: d.started.UTC(), UptimeSec: time.Since(d.started).Seconds(), Healthy: true,
	}
	st.Store.Mode = d.store.Mode()
	st.Store.SyncMode = d.store.SyncMode()
	stats, err := d.store.Stats(ctx)
	if err != nil {
		st.Healthy = false
		d.log.WarnContext(ctx, "store stats", "err", err)
	}
	st.Store.Streams, st.Store.Messages, st.Store.Bytes = stats.Streams, stats.Messages, stats.Bytes
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}
