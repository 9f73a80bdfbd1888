package rollouthttp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/rollout"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

var testRuntime *isolate.Runtime

func TestMain(m *testing.M) {
	os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int { testRuntime = rt; return m.Run() }))
}

// tokens: each bearer token is a user of that name.
type tokens struct{}

func (tokens) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		return httpapi.Principal{ID: tok, Kind: "user"}, nil
	}
	return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "no token")
}

// owners lets a user act on the agents they own only, as the default
// policy does for tenants.
type owners map[string]string

func (o owners) Authorize(_ context.Context, p httpapi.Principal, action string, res httpapi.Resource) error {
	if res.Type == "Agent" && o[res.ID] == p.ID && (action == ActionRead || action == ActionChange) {
		return nil
	}
	return api.Errorf(api.KindForbidden, "%s may not %s %s", p.ID, action, res.ID)
}

type fixture struct {
	srv    *httptest.Server
	c      *rollout.Controller
	m      *session.Manager
	v1, v2 string
	other  string
}

func bundleOf(t testing.TB, name, code string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"` + name + `","entry":"agent.js"}`),
		"agent.js": []byte(`export default { async fetch() { return new Response("` + code + `"); } };`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setup(t testing.TB) fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.New(ctx, session.Config{Store: st, Runtime: testRuntime})
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := ledger.GenerateKey("test.local/rollout")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ledger.ParseKey(skey)
	l, err := ledger.Open(ctx, st, key, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := rollout.New(ctx, rollout.Config{Store: st, Router: m, Ledger: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, session.Bindings{}); err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: tokens{}, Authz: owners{"shop": "alice", "other": "mallory"}, MaxBodyBytes: 1 << 16})
	New(c).Routes(rt)
	if err := httpapi.CheckOpenAPI(rt, rt.OpenAPI("t", "1")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt)
	t.Cleanup(func() { srv.Close(); _ = m.Close(ctx); _ = l.Close(); _ = st.Close() })
	f := fixture{srv: srv, c: c, m: m}
	v1, err := m.Deploy(ctx, session.Principal{ID: "alice", Kind: "user"}, bundleOf(t, "shop", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := m.AddVersion(ctx, bundleOf(t, "shop", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := m.Deploy(ctx, session.Principal{ID: "mallory", Kind: "user"}, bundleOf(t, "other", "o"))
	if err != nil {
		t.Fatal(err)
	}
	f.v1, f.v2, f.other = v1.Digest, v2.Digest, o.Digest
	return f
}

func (f fixture) do(t testing.TB, method, path, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestRolloutRoutes: the owner sees the deployment and pauses, resumes,
// promotes and rolls back a rollout; every answer is the deployment after.
func TestRolloutRoutes(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	if _, err := f.c.Start(ctx, rollout.Start{Agent: "shop", Version: f.v2,
		Steps: []bundle.RolloutStep{{Percent: 10, PauseSeconds: 60}, {Percent: 50, PauseSeconds: 60}, {Percent: 100}}}); err != nil {
		t.Fatal(err)
	}
	dep := func(status int, body []byte) api.Deployment {
		t.Helper()
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		var d api.Deployment
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d := dep(f.do(t, "GET", "/v1/agents/shop/deployment", "alice", ""))
	if d.Rollout == nil || d.Rollout.Phase != "running" || d.Rollout.Percent != 10 || len(d.Versions) != 2 {
		t.Fatalf("deployment: %+v", d)
	}
	if d = dep(f.do(t, "POST", "/v1/agents/shop/rollout/pause", "alice", `{"reason":"checking"}`)); d.Rollout.Phase != "paused" || d.Rollout.Reason != "checking" {
		t.Fatalf("pause: %+v", d.Rollout)
	}
	if d = dep(f.do(t, "POST", "/v1/agents/shop/rollout/resume", "alice", "")); d.Rollout.Phase != "running" {
		t.Fatalf("resume: %+v", d.Rollout)
	}
	if d = dep(f.do(t, "POST", "/v1/agents/shop/rollout/promote", "alice", "")); d.Rollout.Percent != 50 {
		t.Fatalf("promote: %+v", d.Rollout)
	}
	d = dep(f.do(t, "POST", "/v1/agents/shop/rollback", "alice", `{"reason":"p99 too high"}`))
	if d.Rollout.Phase != "rolled_back" {
		t.Fatalf("rollback: %+v", d.Rollout)
	}
	for _, v := range d.Versions {
		if v.Version == f.v1 && (v.Role != api.RoleStable || v.Percent != 100) || v.Version == f.v2 && v.Role != api.RoleKept {
			t.Fatalf("versions after rollback: %+v", d.Versions)
		}
	}
}

// TestRolloutRoutesHostileClass: another tenant's agent, bad names,
// malformed, oversized and unknown-field bodies, unknown versions and
// operations without a rollout are 4xx problems with stable types, never
// 5xx, and change nothing.
func TestRolloutRoutesHostileClass(t *testing.T) {
	f := setup(t)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		kind                            api.Kind
	}{
		{"other tenant reads", "GET", "/v1/agents/shop/deployment", "mallory", "", 403, api.KindForbidden},
		{"other tenant rolls back", "POST", "/v1/agents/shop/rollback", "mallory", "", 403, api.KindForbidden},
		{"other tenant pauses", "POST", "/v1/agents/shop/rollout/pause", "mallory", "", 403, api.KindForbidden},
		{"rollback to another agent's version", "POST", "/v1/agents/shop/rollback", "alice", `{"to":"` + f.other + `"}`, 404, api.KindNotFound},
		{"rollback to nothing older", "POST", "/v1/agents/shop/rollback", "alice", "", 409, api.KindConflict},
		{"bad agent name", "GET", "/v1/agents/Shop..x/deployment", "alice", "", 400, api.KindInvalidID},
		{"long agent name", "GET", "/v1/agents/" + strings.Repeat("a", 300) + "/deployment", "alice", "", 400, api.KindInvalidID},
		{"malformed body", "POST", "/v1/agents/shop/rollback", "alice", `{"to":`, 400, ""},
		{"unknown field", "POST", "/v1/agents/shop/rollback", "alice", `{"too":"x"}`, 400, ""},
		{"wrong type", "POST", "/v1/agents/shop/rollback", "alice", `{"to":5}`, 400, ""},
		{"oversized body", "POST", "/v1/agents/shop/rollback", "alice", `{"reason":"` + strings.Repeat("x", 1<<17) + `"}`, 413, api.KindTooLarge},
		{"oversized reason", "POST", "/v1/agents/shop/rollout/pause", "alice", `{"reason":"` + strings.Repeat("x", 2000) + `"}`, 422, api.KindValidation},
		{"pause without rollout", "POST", "/v1/agents/shop/rollout/pause", "alice", "", 409, api.KindConflict},
		{"promote without rollout", "POST", "/v1/agents/shop/rollout/promote", "alice", "", 409, api.KindConflict},
		{"no token", "GET", "/v1/agents/shop/deployment", "", "", 401, api.KindUnauthenticated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.do(t, c.method, c.path, c.token, c.body)
			if c.status == 400 && status >= 400 && status < 500 && c.kind == "" {
				return // the strict decoder's kinds (invalid-json, validation) vary by input
			}
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			if c.kind != "" && !strings.Contains(string(body), string(c.kind)) {
				t.Fatalf("problem %s, want %s", body, c.kind)
			}
		})
	}
	rs, err := f.m.ReadRouting(context.Background(), "shop")
	if err != nil || rs.Routing != (session.Routing{Stable: f.v1}) {
		t.Fatalf("routing changed: %+v %v", rs, err)
	}
}

// FuzzRollbackBody: no body makes the rollback route answer 5xx.
func FuzzRollbackBody(f *testing.F) {
	for _, s := range []string{"", "{}", `{"to":`, `{"too":"x"}`, `{"to":5}`, `{"to":"sha256:00","reason":"\u0000"}`, `{"reason":"ok"}`, "null", "[]"} {
		f.Add(s)
	}
	fx := setup(f)
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := http.NewRequest("POST", fx.srv.URL+"/v1/agents/shop/rollback", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer alice")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("body %q: %d %s", body, resp.StatusCode, b)
		}
		if resp.StatusCode == 200 {
			// It rolled something back: put v1 back for the next input.
			_, _ = fx.c.Rollback(context.Background(), "shop", fx.v1, "")
		}
	})
}
