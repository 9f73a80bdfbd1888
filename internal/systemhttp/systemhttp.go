// Package systemhttp serves the daemon's own endpoints: liveness and
// readiness probes, Prometheus metrics, the OpenAPI document of every
// route, the daemon's status and the caller's identity. Product packages
// register their routes themselves (<capability>http).
package systemhttp

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what the endpoints report on.
type Config struct {
	// Ready reports whether the daemon serves (set once it listens).
	Ready func() bool
	// Store is the daemon's store (nil: not ready).
	Store   *store.Store
	Metrics prometheus.Gatherer
	NodeID  string
	Started time.Time
	Logger  *slog.Logger
}

// Routes registers the endpoints on r.
func Routes(r *httpapi.Router, cfg Config) {
	r.Handle(httpapi.Route{Method: "GET", Path: "/healthz", Summary: "Liveness: the process serves HTTP.", Tag: "system",
		Public: true, Response: api.Health{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSON(w, http.StatusOK, api.Health{Status: "ok"})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/readyz", Summary: "Readiness: the daemon and its store can serve requests.", Tag: "system",
		Public: true, Response: api.Health{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if !cfg.Ready() || cfg.Store == nil || cfg.Store.Ping(ctx) != nil {
				httpapi.WriteJSON(w, http.StatusServiceUnavailable, api.Health{Status: "unavailable"})
				return nil
			}
			httpapi.WriteJSON(w, http.StatusOK, api.Health{Status: "ok"})
			return nil
		}})
	metrics := promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{})
	// metrics.read: administrators, and the metrics-reader role
	// (internal/security's ActionMetricsRead).
	r.Handle(httpapi.Route{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics (text exposition format; administrators and the metrics-reader role).", Tag: "system",
		Action: "metrics.read", RawContentType: "text/plain", Handler: func(w http.ResponseWriter, r *http.Request) error {
			metrics.ServeHTTP(w, r)
			return nil
		}})
	router := r
	r.Handle(httpapi.Route{Method: "GET", Path: "/openapi.json", Summary: "OpenAPI 3.1 document of every route (public; ETag and If-None-Match).", Tag: "system",
		Public: true, Response: map[string]any{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			httpapi.WriteJSONConditional(w, r, router.OpenAPI("agentcloud", version.Get().Version))
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/status", Summary: "Daemon health, version, uptime and store statistics.", Tag: "system", Action: "status.read",
		Response: api.Status{}, Handler: cfg.status})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/whoami", Summary: "The authenticated principal of this request.", Tag: "system", Action: "whoami",
		Response: api.WhoAmI{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			p, _ := httpapi.PrincipalFrom(r.Context())
			httpapi.WriteJSON(w, http.StatusOK, api.WhoAmI{Principal: p.ID, Kind: p.Kind})
			return nil
		}})
}

func (cfg Config) status(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	v := version.Get()
	st := api.Status{
		Version: v.Version, Commit: v.Commit, GoVersion: v.GoVersion, NodeID: cfg.NodeID,
		StartedAt: cfg.Started.UTC(), UptimeSec: time.Since(cfg.Started).Seconds(), Healthy: true,
	}
	st.Store.Mode = cfg.Store.Mode()
	st.Store.SyncMode = cfg.Store.SyncMode()
	stats, err := cfg.Store.Stats(ctx)
	if err != nil {
		st.Healthy = false
		if cfg.Logger != nil {
			cfg.Logger.WarnContext(ctx, "store stats", "err", err)
		}
	}
	st.Store.Streams, st.Store.Messages, st.Store.Bytes = stats.Streams, stats.Messages, stats.Bytes
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}
