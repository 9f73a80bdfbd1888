package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// seenCtx records what a handler saw of its request's context.
type seenCtx struct {
	id   string
	p    Principal
	hasP bool
}

// TestRequestContextClass checks what every kind of route sees in its
// request's context now that the request ID and the principal share one
// value: protected routes see their caller, public routes none, a
// coalesced read its own caller, a WithPrincipal inside a handler wins,
// and no request sees another's ID or principal; the per-route metrics
// count each method and status; the access log still has every request.
func TestRequestContextClass(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	rt := NewRouter(Options{Auth: headerAuth{}, Authz: allowAll{}, Metrics: NewMetrics(reg), MaxBodyBytes: 1024,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	seen := map[string]seenCtx{}
	record := func(w http.ResponseWriter, r *http.Request) error {
		p, ok := PrincipalFrom(r.Context())
		seen[r.URL.Path] = seenCtx{RequestID(r.Context()), p, ok}
		WriteJSON(w, 200, map[string]string{"ok": "yes"})
		return nil
	}
	rt.Handle(Route{Method: "GET", Path: "/v1/read/{tool}", Summary: "coalesced read", Action: "t.read", Handler: record})
	rt.Handle(Route{Method: "POST", Path: "/v1/write/{tool}", Summary: "write", Action: "t.write", Handler: record})
	rt.Handle(Route{Method: "GET", Path: "/open/{tool}", Summary: "public", Public: true, Handler: record})
	rt.Handle(Route{Path: "/any/{tool}", Summary: "any method", Action: "t.call", RawContentType: "*/*", AnyQuery: true, Handler: record})
	rt.Handle(Route{Method: "GET", Path: "/v1/as/{tool}", Summary: "acts as another", Action: "t.read", Handler: func(w http.ResponseWriter, r *http.Request) error {
		r = r.WithContext(WithPrincipal(r.Context(), Principal{ID: "inner", Kind: "agent"}))
		return record(w, r)
	}})
	rt.Handle(Route{Method: "GET", Path: "/v1/fail/{tool}", Summary: "fails", Action: "t.read", Handler: func(http.ResponseWriter, *http.Request) error {
		return context.DeadlineExceeded
	}})
	cases := []struct {
		method, path, caller string
		want                 seenCtx
	}{
		{"GET", "/v1/read/a", "alice", seenCtx{"r1", Principal{ID: "alice", Kind: "user"}, true}},
		{"GET", "/v1/read/b", "bob", seenCtx{"r2", Principal{ID: "bob", Kind: "user"}, true}},
		{"POST", "/v1/write/a", "carol", seenCtx{"r3", Principal{ID: "carol", Kind: "user"}, true}},
		{"GET", "/open/a", "alice", seenCtx{"r4", Principal{}, false}},
		{"DELETE", "/any/a", "bob", seenCtx{"r5", Principal{ID: "bob", Kind: "user"}, true}},
		{"PATCH", "/any/b", "alice", seenCtx{"r6", Principal{ID: "alice", Kind: "user"}, true}},
		{"GET", "/v1/as/a", "alice", seenCtx{"r7", Principal{ID: "inner", Kind: "agent"}, true}},
	}
	for _, c := range cases {
		rec, _ := do(t, rt, c.method, c.path, "", map[string]string{"X-Request-Id": c.want.id, "X-Caller": c.caller})
		if rec.Code != 200 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, rec.Code, rec.Body)
		}
		if got := seen[c.path]; got != c.want {
			t.Errorf("%s %s: handler saw %+v, want %+v", c.method, c.path, got, c.want)
		}
	}
	// Unauthenticated and failing requests: counted, never served.
	if rec, _ := do(t, rt, "GET", "/v1/read/c", "", map[string]string{"Authorization": ""}); rec.Code != 401 {
		t.Fatalf("no credentials: %d", rec.Code)
	}
	if _, ok := seen["/v1/read/c"]; ok {
		t.Fatal("unauthenticated request reached its handler")
	}
	for range 2 {
		if rec, _ := do(t, rt, "GET", "/v1/fail/a", "", map[string]string{"X-Caller": "bob"}); rec.Code != 500 {
			t.Fatalf("failing handler: %d", rec.Code)
		}
	}
	for _, m := range []struct {
		route, method, code string
		n                   float64
	}{
		{"GET /v1/read/{tool}", "GET", "200", 2}, {"GET /v1/read/{tool}", "GET", "401", 1},
		{"POST /v1/write/{tool}", "POST", "200", 1}, {"/any/{tool}", "DELETE", "200", 1},
		{"/any/{tool}", "PATCH", "200", 1}, {"GET /v1/fail/{tool}", "GET", "500", 2},
	} {
		if got := counted(t, reg, "agentcloud_http_requests_total", m.code, m.method, m.route); got != m.n {
			t.Errorf("requests{%s %s %s} = %v, want %v", m.route, m.method, m.code, got, m.n)
		}
	}
	if n := series(t, reg, "agentcloud_http_request_duration_seconds"); n != 6 {
		t.Errorf("%d duration series, want one per route (6)", n)
	}
	if got := strings.Count(logs.String(), "msg=http "); got != len(cases)+3 {
		t.Errorf("%d access log lines, want %d:\n%s", got, len(cases)+3, logs.String())
	}
}

// headerAuth authenticates "Bearer good" as the user X-Caller names.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (Principal, error) {
	if _, err := (fixedAuth{}).Authenticate(r); err != nil {
		return Principal{}, err
	}
	return Principal{ID: r.Header.Get("X-Caller"), Kind: "user"}, nil
}

// counted is the value of counter name with label values want (in label
// name order).
func counted(t *testing.T, g prometheus.Gatherer, name string, want ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if mf.GetName() == name && slices.Equal(got, want) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// series counts the series of metric name.
func series(t *testing.T, g prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestReqCtxDerivedClass: the router's request context (one allocation for
// the value, the request's info and its status writer) behaves as the
// context.WithValue it replaced for what handlers derive from it: a
// cancelable child, a WithoutCancel and a WithValue still see the request
// ID and the principal; the client going away ends the child; the
// server's own values (http.ServerContextKey) still reach through; the
// X-Request-Id header is set once.
func TestReqCtxDerivedClass(t *testing.T) {
	rt := NewRouter(Options{Auth: headerAuth{}, Authz: allowAll{}})
	type key struct{}
	var seen []seenCtx
	var childEnded, serverValue bool
	rt.Handle(Route{Method: "GET", Path: "/v1/x/{tool}", Summary: "derives", Action: "t.read", Handler: func(w http.ResponseWriter, r *http.Request) error {
		child, cancel := context.WithCancel(r.Context())
		defer cancel()
		for _, ctx := range []context.Context{child, context.WithoutCancel(r.Context()), context.WithValue(r.Context(), key{}, 1)} {
			p, ok := PrincipalFrom(ctx)
			seen = append(seen, seenCtx{RequestID(ctx), p, ok})
		}
		serverValue = r.Context().Value(key{}) == "server"
		parentCancel := r.Context().Value(cancelKey{}).(context.CancelFunc)
		parentCancel()
		<-child.Done()
		childEnded = true
		WriteJSON(w, 200, map[string]string{"ok": "yes"})
		return nil
	}})
	base, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "server"))
	defer cancel()
	req, _ := http.NewRequestWithContext(context.WithValue(base, cancelKey{}, context.CancelFunc(cancel)), "GET", "/v1/x/a", nil)
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("X-Caller", "alice")
	req.Header.Set("X-Request-Id", "rid1")
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	want := seenCtx{"rid1", Principal{ID: "alice", Kind: "user"}, true}
	if len(seen) != 3 || slices.ContainsFunc(seen, func(s seenCtx) bool { return s != want }) {
		t.Fatalf("derived contexts saw %+v, want %+v each", seen, want)
	}
	if !childEnded || !serverValue {
		t.Fatalf("child ended %v, server value seen %v", childEnded, serverValue)
	}
	if got := rec.Header().Values("X-Request-Id"); len(got) != 1 || got[0] != "rid1" {
		t.Fatalf("X-Request-Id = %q", got)
	}
}

type cancelKey struct{}
