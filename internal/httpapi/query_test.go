package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/prometheus/client_golang/prometheus"
)

// queryRouter has routes that read query parameters, one public, one that
// passes its query on, and one that takes none.
func queryRouter(t testing.TB) (*Router, *string) {
	t.Helper()
	rt := NewRouter(Options{Auth: fixedAuth{}, Metrics: NewMetrics(prometheus.NewRegistry())})
	var seen string
	echo := func(w http.ResponseWriter, r *http.Request) error {
		seen = r.URL.RawQuery
		WriteJSON(w, 200, map[string]string{"q": seen})
		return nil
	}
	rt.Handle(Route{Method: "GET", Path: "/v1/items", Summary: "list", Handler: echo, Query: []QueryParam{
		{Name: "q", Description: "words"},
		{Name: "limit", Type: QueryInteger, Description: "at most"},
		{Name: "all", Type: QueryBoolean, Description: "everything"},
		{Name: "tag", Repeated: true, Description: "a tag (repeatable)"},
		{Name: "n", Type: QueryInteger, Repeated: true, Description: "numbers (repeatable)"},
	}})
	rt.Handle(Route{Method: "GET", Path: "/v1/files", Summary: "read", Handler: echo,
		Query: []QueryParam{{Name: "path", Required: true, Description: "a path under /workspace"}}})
	rt.Handle(Route{Method: "GET", Path: "/pub", Summary: "public", Public: true, Handler: echo,
		Query: []QueryParam{{Name: "x"}}})
	rt.Handle(Route{Path: "/agents/{agent}/sessions/{session}/{path...}", Summary: "pass on", AnyQuery: true, Handler: echo})
	rt.Handle(Route{Method: "GET", Path: "/v1/status", Summary: "none", Handler: echo})
	return rt, &seen
}

var queryCases = []struct {
	path  string
	want  int    // status
	field string // of the problem
}{
	{"/v1/items", 200, ""},
	{"/v1/items?q=a+b&limit=5&all=true", 200, ""},
	{"/v1/items?limit=-3", 200, ""},
	{"/v1/items?q=", 200, ""},
	{"/v1/items?bogus=1", 400, "bogus"},
	{"/v1/items?Q=x", 400, "Q"},
	{"/v1/items?limit=abc", 400, "limit"},
	{"/v1/items?limit=1e3", 400, "limit"},
	{"/v1/items?limit=99999999999999999999", 400, "limit"},
	{"/v1/items?all=maybe", 400, "all"},
	{"/v1/items?q=a&q=b", 400, "q"},
	{"/v1/items?tag=a&tag=b&tag=", 200, ""},
	{"/v1/items?n=1&n=2", 200, ""},
	{"/v1/items?n=1&n=x", 400, "n"},
	{"/v1/items?tag=a&q=b&q=c", 400, "q"},
	{"/v1/items?q=%zz", 400, "query"},
	{"/v1/items?q=a;b", 400, "query"},
	{"/v1/items?" + strings.Repeat("q", 9000) + "=1", 400, "query"},
	{"/v1/files", 400, "path"},
	{"/v1/files?path=/workspace/a", 200, ""},
	{"/v1/files?path=", 200, ""},
	{"/v1/status?verbose=1", 400, "verbose"},
	{"/v1/status", 200, ""},
	{"/pub?x=1", 200, ""},
	{"/pub?y=1", 400, "y"},
	{"/agents/a/sessions/s/any/path?anything=1&anything=2&%zz", 200, ""},
	{"/no/such/route?bogus=%zz", 404, ""},
}

// TestQueryParamClass: every route is held to the query parameters it
// declares, public or not, and the problem names the parameter; a route
// that passes its query on and an unknown path are not checked.
func TestQueryParamClass(t *testing.T) {
	rt, seen := queryRouter(t)
	for _, c := range queryCases {
		req := httptest.NewRequest("GET", "http://x"+c.path, nil)
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		*seen = "(not called)"
		rt.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%.80s: status %d, want %d: %s", c.path, rec.Code, c.want, rec.Body)
			continue
		}
		if c.want != 400 {
			continue
		}
		var p api.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if p.Kind() != api.KindInvalidQuery || p.Field != c.field || p.Detail == "" {
			t.Errorf("%.80s: problem %s field %q, want %s field %q: %s", c.path, p.Kind(), p.Field, api.KindInvalidQuery, c.field, p.Detail)
		}
		if *seen != "(not called)" {
			t.Errorf("%.80s: the handler ran", c.path)
		}
		if len(p.Detail) > 300 {
			t.Errorf("%.80s: detail of %d bytes echoes the input", c.path, len(p.Detail))
		}
	}
	// Unauthenticated requests are refused before the query is looked at.
	req := httptest.NewRequest("GET", "/v1/items?bogus=1", nil)
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("unauthenticated: %d", rec.Code)
	}
}

func FuzzCheckQuery(f *testing.F) {
	for _, c := range queryCases {
		if _, q, ok := strings.Cut(c.path, "?"); ok {
			f.Add(q)
		}
	}
	rt, _ := queryRouter(f)
	f.Fuzz(func(t *testing.T, q string) {
		if strings.ContainsAny(q, " #\r\n\x00") || len(q) > 20000 {
			return // not a request line
		}
		req := httptest.NewRequest("GET", "http://x/v1/items", nil)
		req.URL.RawQuery = q
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("%q: status %d", q, rec.Code)
		}
	})
}

// TestOpenAPIDocumentsQueryAndOperations: query parameters appear with
// their types, every operation has its own operationId (a route for any
// method included), public routes drop the bearer requirement, and the
// Problem schema is a schema, not a reference to itself.
func TestOpenAPIDocumentsQueryAndOperations(t *testing.T) {
	rt, _ := queryRouter(t)
	doc := rt.OpenAPI("t", "v")
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Paths map[string]map[string]struct {
			OperationID string           `json:"operationId"`
			Parameters  []map[string]any `json:"parameters"`
			Security    *[]any           `json:"security"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for p, item := range d.Paths {
		for m, op := range item {
			if prev, dup := ids[op.OperationID]; dup || op.OperationID == "" {
				t.Errorf("%s %s: operationId %q also used by %s", m, p, op.OperationID, prev)
			}
			ids[op.OperationID] = m + " " + p
		}
	}
	if n := len(d.Paths["/agents/{agent}/sessions/{session}/{path}"]); n != len(anyMethods) {
		t.Errorf("any-method route documented for %d methods", n)
	}
	var limit map[string]any
	for _, p := range d.Paths["/v1/items"]["get"].Parameters {
		if p["name"] == "limit" {
			limit = p
		}
	}
	if limit == nil || limit["in"] != "query" || limit["schema"].(map[string]any)["type"] != "integer" {
		t.Errorf("limit: %v", limit)
	}
	if req := d.Paths["/v1/files"]["get"].Parameters[0]; req["required"] != true {
		t.Errorf("path: %v", req)
	}
	if s := d.Paths["/pub"]["get"].Security; s == nil || len(*s) != 0 {
		t.Errorf("public route security: %v", s)
	}
	if s := d.Paths["/v1/status"]["get"].Security; s != nil {
		t.Errorf("protected route overrides the document's security: %v", *s)
	}
	if pr := d.Components.Schemas["Problem"]; pr["type"] != "object" || pr["$ref"] != nil {
		t.Errorf("Problem schema: %v", pr)
	}
}
