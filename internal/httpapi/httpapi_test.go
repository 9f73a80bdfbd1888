package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/prometheus/client_golang/prometheus"
)

type widget struct {
	Name  string            `json:"name"`
	Count int               `json:"count,omitempty"`
	Tags  []string          `json:"tags,omitempty"`
	Meta  map[string]string `json:"meta,omitempty"`
}

type fixedAuth struct{}

func (fixedAuth) Authenticate(r *http.Request) (Principal, error) {
	if r.Header.Get("Authorization") != "Bearer good" {
		return Principal{}, api.Errorf(api.KindUnauthenticated, "invalid token")
	}
	return Principal{ID: "admin", Kind: "admin"}, nil
}

func testRouter(t testing.TB) *Router {
	t.Helper()
	rt := NewRouter(Options{Auth: fixedAuth{}, Metrics: NewMetrics(prometheus.NewRegistry()), MaxBodyBytes: 1024})
	rt.Handle(Route{Method: "POST", Path: "/v1/widgets", Summary: "create", Request: widget{}, Response: widget{}, Status: 201,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in widget
			if err := DecodeJSON(r, &in); err != nil {
				return err
			}
			if in.Name == "" {
				return api.FieldErrorf(api.KindValidation, "name", "name is required")
			}
			WriteJSON(w, 201, in)
			return nil
		}})
	rt.Handle(Route{Method: "GET", Path: "/v1/widgets/{tool}", Summary: "get", Response: widget{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			switch r.PathValue("tool") {
			case "panic":
				panic("boom")
			case "oops":
				return errors.New("secret internal detail")
			}
			return api.Errorf(api.KindNotFound, "widget %q not found", r.PathValue("tool"))
		}})
	rt.Handle(Route{Method: "GET", Path: "/open", Summary: "public", Public: true,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			WriteJSON(w, 200, map[string]string{"ok": "yes"})
			return nil
		}})
	return rt
}

func do(t testing.TB, h http.Handler, method, path, body string, hdr map[string]string) (*httptest.ResponseRecorder, api.Problem) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer good")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var p api.Problem
	if rec.Code >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != api.ProblemContentType {
			t.Fatalf("%s %s: status %d with content type %q, want problem+json", method, path, rec.Code, ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem body: %v: %s", err, rec.Body)
		}
		if p.Status != rec.Code || p.RequestID == "" || p.Type == "" {
			t.Fatalf("incomplete problem: %+v", p)
		}
	}
	return rec, p
}

func TestBadInput(t *testing.T) {
	rt := testRouter(t)
	cases := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		kind                     api.Kind
		field                    string
	}{
		{"ok", "POST", "/v1/widgets", `{"name":"a"}`, nil, 201, "", ""},
		{"malformed", "POST", "/v1/widgets", `{"name":`, nil, 400, api.KindInvalidJSON, ""},
		{"syntax", "POST", "/v1/widgets", `{"name" "a"}`, nil, 400, api.KindInvalidJSON, ""},
		{"empty", "POST", "/v1/widgets", ``, nil, 400, api.KindInvalidJSON, ""},
		{"wrong type", "POST", "/v1/widgets", `{"name":"a","count":"3"}`, nil, 400, api.KindInvalidJSON, "count"},
		{"unknown field", "POST", "/v1/widgets", `{"name":"a","colour":"red"}`, nil, 400, api.KindInvalidJSON, "colour"},
		{"trailing", "POST", "/v1/widgets", `{"name":"a"} {}`, nil, 400, api.KindInvalidJSON, ""},
		{"array body", "POST", "/v1/widgets", `[1]`, nil, 400, api.KindInvalidJSON, ""},
		{"too large", "POST", "/v1/widgets", `{"name":"` + strings.Repeat("x", 2000) + `"}`, nil, 413, api.KindTooLarge, ""},
		{"content type", "POST", "/v1/widgets", `{"name":"a"}`, map[string]string{"Content-Type": "text/plain"}, 415, api.KindUnsupportedMedia, ""},
		{"validation", "POST", "/v1/widgets", `{}`, nil, 422, api.KindValidation, "name"},
		{"no auth", "POST", "/v1/widgets", `{"name":"a"}`, map[string]string{"Authorization": ""}, 401, api.KindUnauthenticated, ""},
		{"bad auth", "GET", "/v1/widgets/x", ``, map[string]string{"Authorization": "Bearer bad"}, 401, api.KindUnauthenticated, ""},
		{"not found", "GET", "/v1/widgets/x", ``, nil, 404, api.KindNotFound, ""},
		{"no route", "GET", "/v1/nothing", ``, nil, 404, api.KindNotFound, ""},
		{"method", "DELETE", "/v1/widgets", ``, nil, 405, api.KindMethodNotAllowed, ""},
		{"panic", "GET", "/v1/widgets/panic", ``, nil, 500, api.KindInternal, ""},
		{"internal", "GET", "/v1/widgets/oops", ``, nil, 500, api.KindInternal, ""},
		{"public", "GET", "/open", ``, map[string]string{"Authorization": ""}, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, p := do(t, rt, tc.method, tc.path, tc.body, tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.kind != "" && p.Kind() != tc.kind {
				t.Fatalf("kind %q, want %q", p.Kind(), tc.kind)
			}
			if p.Field != tc.field {
				t.Fatalf("field %q, want %q", p.Field, tc.field)
			}
			if strings.Contains(rec.Body.String(), "secret internal detail") {
				t.Fatal("internal error text leaked to the client")
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	rt := testRouter(t)
	rec, _ := do(t, rt, "GET", "/open", "", map[string]string{"X-Request-Id": "abc-123"})
	if got := rec.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("request id %q", got)
	}
	rec, _ = do(t, rt, "GET", "/open", "", map[string]string{"X-Request-Id": "bad id\n"})
	if got := rec.Header().Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("unsafe request id echoed: %q", got)
	}
}

func TestOpenAPIHasEveryRoute(t *testing.T) {
	rt := testRouter(t)
	doc := rt.OpenAPI("t", "1")
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &parsed); err != nil {
		t.Fatal(err)
	}
	if parsed.OpenAPI != "3.1.0" {
		t.Fatalf("openapi version %q", parsed.OpenAPI)
	}
	if err := CheckOpenAPI(rt, doc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"widget"`)) {
		t.Fatalf("schema for widget missing: %s", b)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"count":1e400}`, `{"tags":[1]}`, `{"meta":{"a":1}}`, `null`, `"x"`} {
		f.Add(s)
	}
	rt := testRouter(f)
	f.Fuzz(func(t *testing.T, body string) {
		rec, _ := do(t, rt, "POST", "/v1/widgets", body, nil)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// TestPathParamClass: a route with an unknown wildcard does not register,
// and every known wildcard is checked before the handler runs.
func TestPathParamClass(t *testing.T) {
	func() {
		defer func() {
			if recover() == nil {
				t.Error("a route with wildcard {thing} registered without an identifier rule")
			}
		}()
		NewRouter(Options{}).Handle(Route{Method: "GET", Path: "/v1/things/{thing}", Summary: "x", Public: true,
			Handler: func(http.ResponseWriter, *http.Request) error { return nil }})
	}()
	rt := NewRouter(Options{})
	ran := 0
	rt.Handle(Route{Method: "GET", Path: "/a/{agent}/s/{session}/{path...}", Summary: "x", Public: true,
		Handler: func(w http.ResponseWriter, r *http.Request) error { ran++; return nil }})
	for _, c := range []struct {
		path string
		code int
	}{
		{"/a/bot/s/alice/anything/at/all", 200},
		{"/a/bot/s/" + strings.Repeat("x", 5000) + "/p", 400},
		{"/a/Bot/s/alice/p", 400},
		{"/a/bot/s/a%2Fb/p", 400},
	} {
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		if rec.Code != c.code {
			t.Errorf("%.40s: %d, want %d", c.path, rec.Code, c.code)
		}
		if c.code == 400 && !strings.Contains(rec.Body.String(), string(api.KindInvalidID)) {
			t.Errorf("%.40s: body %s", c.path, rec.Body.String())
		}
	}
	if ran != 1 {
		t.Errorf("handler ran %d times, want 1", ran)
	}
}
