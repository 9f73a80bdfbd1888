package systemhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/systemhttp"
	"github.com/prometheus/client_golang/prometheus"
)

// anyone: every bearer token is a user who may do anything; no token is
// unauthenticated.
type anyone struct{}

func (anyone) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		return httpapi.Principal{ID: tok, Kind: "user"}, nil
	}
	return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "no token")
}

func (anyone) Authorize(context.Context, httpapi.Principal, string, httpapi.Resource) error { return nil }

// TestSystemRoutesClass: the probes are public and /readyz follows Ready
// and the store; /v1/status and /v1/whoami need a principal; the OpenAPI
// document answers 304 to its own ETag.
func TestSystemRoutesClass(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	rt := httpapi.NewRouter(httpapi.Options{Auth: anyone{}, Authz: anyone{}, MaxBodyBytes: 1 << 16})
	systemhttp.Routes(rt, systemhttp.Config{Ready: ready.Load, Store: st, Metrics: prometheus.NewRegistry(), NodeID: "n1",
		Started: time.Now().Add(-time.Minute)})
	srv := httptest.NewServer(rt)
	defer srv.Close()
	get := func(path, token string, h ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if c := get("/healthz", "").StatusCode; c != 200 {
		t.Errorf("healthz: %d", c)
	}
	if c := get("/readyz", "").StatusCode; c != 503 {
		t.Errorf("readyz before ready: %d", c)
	}
	ready.Store(true)
	if c := get("/readyz", "").StatusCode; c != 200 {
		t.Errorf("readyz when ready: %d", c)
	}
	for _, path := range []string{"/v1/status", "/v1/whoami", "/metrics"} {
		if c := get(path, "").StatusCode; c != 401 {
			t.Errorf("%s without a token: %d", path, c)
		}
	}
	var status api.Status
	if err := json.NewDecoder(get("/v1/status", "alice").Body).Decode(&status); err != nil {
		t.Fatal(err)
	}
	if status.NodeID != "n1" || !status.Healthy || status.UptimeSec < 60 || status.Store.Mode == "" {
		t.Errorf("status: %+v", status)
	}
	var who api.WhoAmI
	if err := json.NewDecoder(get("/v1/whoami", "alice").Body).Decode(&who); err != nil || who.Principal != "alice" {
		t.Errorf("whoami: %+v, %v", who, err)
	}
	doc := get("/openapi.json", "")
	etag := doc.Header.Get("ETag")
	if doc.StatusCode != 200 || etag == "" {
		t.Fatalf("openapi: %d, ETag %q", doc.StatusCode, etag)
	}
	if c := get("/openapi.json", "", "If-None-Match", etag).StatusCode; c != http.StatusNotModified {
		t.Errorf("openapi with its ETag: %d", c)
	}
	// A closed store makes the node unready and unhealthy, not a 5xx.
	_ = st.Close()
	if c := get("/readyz", "").StatusCode; c != 503 {
		t.Errorf("readyz with the store closed: %d", c)
	}
	resp := get("/v1/status", "alice")
	status = api.Status{}
	if err := json.NewDecoder(resp.Body).Decode(&status); resp.StatusCode != 200 || err != nil || status.Healthy {
		t.Errorf("status with the store closed: %d %+v %v", resp.StatusCode, status, err)
	}
}
