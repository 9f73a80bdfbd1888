package httpapi

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRouterSingleMatchClass checks that serving through the mux with a
// catch-all (one match per request) answers every kind of request exactly
// as matching in the route mux first and serving through it did: the same
// route and path values, authentication on protected routes, 404, 405 with
// Allow, trailing-slash and path-cleaning redirects, HEAD on GET routes,
// and wildcards that try to reach another route.
func TestRouterSingleMatchClass(t *testing.T) {
	rt := NewRouter(Options{Auth: fixedAuth{}, Metrics: NewMetrics(prometheus.NewRegistry())})
	echo := func(w http.ResponseWriter, r *http.Request) error {
		_, _ = w.Write([]byte(r.Pattern + " a=" + r.PathValue("agent") + " s=" + r.PathValue("session") + " rest=" + r.PathValue("path")))
		return nil
	}
	for _, r := range []Route{
		{Method: "GET", Path: "/agents/{agent}/sessions/{session}/{path...}", AnyQuery: true, Handler: echo},
		{Method: "POST", Path: "/agents/{agent}/sessions/{session}/{path...}", AnyQuery: true, Handler: echo},
		{Method: "GET", Path: "/agents/{agent}", Handler: echo},
		{Method: "DELETE", Path: "/agents/{agent}", Handler: echo},
		{Method: "GET", Path: "/tree/", Handler: echo},
		{Method: "GET", Path: "/open", Public: true, Handler: echo},
		{Path: "/any", Handler: echo},
	} {
		rt.Handle(r)
	}
	// reference is the router's dispatch before the catch-all, as it was.
	reference := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if perr := checkSegments(r.URL.Path); perr != nil {
			rt.ServeHTTP(w, r)
			return
		}
		h, pattern := rt.mux.Handler(r)
		if pattern != "" {
			rt.mux.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		rt.wrap("unmatched", Route{Public: true, AnyQuery: true, Handler: func(w http.ResponseWriter, r *http.Request) error {
			switch rec.Code {
			case http.StatusMethodNotAllowed:
				w.Header().Set("Allow", rec.Header().Get("Allow"))
				return api.Errorf(api.KindMethodNotAllowed, "method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, rec.Header().Get("Allow"))
			case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				return nil
			default:
				return api.Errorf(api.KindNotFound, "no route for %s %s; see /openapi.json", r.Method, strings.ReplaceAll(r.URL.Path, "\n", ""))
			}
		}}).ServeHTTP(w, r)
	})
	reqID := regexp.MustCompile(`[0-9a-f]{24}`)
	for _, c := range []struct{ method, path, auth string }{
		{"GET", "/agents/x/sessions/s1/", "good"},
		{"GET", "/agents/x/sessions/s1/deep/er?q=1", "good"},
		{"POST", "/agents/x/sessions/s1/p", "good"},
		{"PUT", "/agents/x/sessions/s1/p", "good"},
		{"GET", "/agents/x/sessions/s1/", "bad"},
		{"GET", "/agents/x/sessions/s1/", ""},
		{"HEAD", "/agents/x", "good"},
		{"GET", "/agents/x", "good"},
		{"PATCH", "/agents/x", "good"},
		{"GET", "/agents/x/", "good"},
		{"GET", "/agents/", "good"},
		{"GET", "/agents", "good"},
		{"GET", "/tree", "good"},
		{"GET", "/tree/leaf", "good"},
		{"GET", "/open", ""},
		{"POST", "/open", ""},
		{"GET", "/any", "bad"},
		{"OPTIONS", "/any", "good"},
		{"GET", "/nowhere", "good"},
		{"GET", "/nowhere", ""},
		{"GET", "//agents/x", "good"},
		{"GET", "/agents//x", "good"},
		{"GET", "/agents/x/sessions/%2e%2e/x", "good"},
		{"GET", "/agents/x/sessions/s1/../../y", "good"},
		{"GET", "/", "good"},
		{"GET", "/nowhere//x", "good"},
		{"DELETE", "/agents//x", "good"},
	} {
		answer := func(h http.Handler) (int, string, http.Header) {
			req := httptest.NewRequest(c.method, "http://h"+c.path, nil)
			if c.auth != "" {
				req.Header.Set("Authorization", "Bearer "+c.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec.Code, reqID.ReplaceAllString(rec.Body.String(), "ID"), rec.Header()
		}
		code, body, hdr := answer(rt)
		wcode, wbody, whdr := answer(reference)
		if code != wcode || body != wbody {
			t.Errorf("%s %s (%s): %d %q, want %d %q", c.method, c.path, c.auth, code, body, wcode, wbody)
		}
		for _, k := range []string{"Location", "Allow", "Content-Type"} {
			if hdr.Get(k) != whdr.Get(k) {
				t.Errorf("%s %s: %s %q, want %q", c.method, c.path, k, hdr.Get(k), whdr.Get(k))
			}
		}
		if code == 200 && c.auth != "good" && !strings.Contains(body, "/open") {
			t.Errorf("%s %s: answered 200 without a good token: %q", c.method, c.path, body)
		}
	}
}
