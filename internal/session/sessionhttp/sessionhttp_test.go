package sessionhttp_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/session/sessionhttp"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// bodyLimit is the session body limit of the test runtime.
const bodyLimit = 1 << 20

var (
	rtOnce sync.Once
	rt     *isolate.Runtime
	rtErr  error
)

// testRuntime is one isolate runtime for the package's tests (compiling
// the engine is the expensive part), cached on disk across runs.
func testRuntime(tb testing.TB) *isolate.Runtime {
	tb.Helper()
	rtOnce.Do(func() {
		rt, rtErr = isolate.NewRuntime(context.Background(), isolate.Config{MaxBodyBytes: bodyLimit,
			CacheDir: filepath.Join(os.TempDir(), "agentcloud-sessionhttp-test-cache")})
	})
	if rtErr != nil {
		tb.Fatal(rtErr)
	}
	return rt
}

// headerAuth authenticates the principal named in X-Principal (an
// "admin" principal when the header is absent).
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	id := r.Header.Get("X-Principal")
	if id == "" {
		return httpapi.Principal{ID: "admin", Kind: "admin"}, nil
	}
	return httpapi.Principal{ID: id, Kind: "user"}, nil
}

// ownerAuthz is the ownership rule the daemon's policy applies to agents,
// reduced to what these routes ask: anyone may deploy a new agent or list
// agents; only an agent's owner (or the admin) may deploy over it, read it
// or reach its sessions. It reads owners through the Manager, as the
// daemon's authorizer does, so it sees the record a deploy pins.
type ownerAuthz struct {
	m *session.Manager
	// filtered counts checks made while filtering a listing.
	mu       sync.Mutex
	filtered int
}

func (a *ownerAuthz) Authorize(ctx context.Context, p httpapi.Principal, action string, res httpapi.Resource) error {
	if session.IsFiltering(ctx) {
		a.mu.Lock()
		a.filtered++
		a.mu.Unlock()
	}
	if p.Kind == "admin" || action == session.ActionAgentList || (res.Type == "Agent" && res.ID == "") {
		return nil
	}
	agent := res.ID
	if res.Type == "Session" {
		agent = res.Parent
	}
	info, ok, err := a.m.AgentInfo(ctx, agent)
	if err != nil {
		return err
	}
	if !ok {
		if action == session.ActionAgentDeploy {
			return nil
		}
		return api.Errorf(api.KindNotFound, "agent %q is not deployed", agent)
	}
	if info.Owner != p.ID {
		return api.Errorf(api.KindForbidden, "%s may not %s agent %s (owned by %s)", p.ID, action, agent, info.Owner)
	}
	return nil
}

// env is a session Manager on a real store served by the real router on
// loopback, with the ownership authorizer.
type env struct {
	m     *session.Manager
	authz *ownerAuthz
	srv   *httptest.Server
}

func newEnv(t testing.TB) *env { t.Helper(); return newEnvWith(t, session.SocketLimits{}) }

// newEnvWith is newEnv with the given WebSocket limits.
func newEnvWith(t testing.TB, sockets session.SocketLimits) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	authz := &ownerAuthz{}
	m, err := session.New(ctx, session.Config{Store: st, Runtime: testRuntime(t), Sockets: sockets})
	if err != nil {
		t.Fatal(err)
	}
	authz.m = m
	if err := m.Start(ctx, session.Bindings{DeployAuthorizer: sessionhttp.AuthorizeDeploys(authz)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	r := httpapi.NewRouter(httpapi.Options{Auth: headerAuth{}, Authz: authz,
		Metrics: httpapi.NewMetrics(prometheus.NewRegistry()), MaxBodyBytes: 4 << 20})
	sessionhttp.New(sessionhttp.Config{Manager: m, Authorizer: authz}).Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{m: m, authz: authz, srv: srv}
}

// do sends a request as principal ("" for the admin).
func (e *env) do(t testing.TB, principal, method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if principal != "" {
		req.Header.Set("X-Principal", principal)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// deploy posts a bundle made of files as principal.
func (e *env) deploy(t testing.TB, principal string, files map[string]string) (*http.Response, []byte) {
	t.Helper()
	fs := map[string][]byte{}
	for k, v := range files {
		fs[k] = []byte(v)
	}
	b, err := bundle.FromFiles(fs)
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := b.TarGz()
	if err != nil {
		t.Fatal(err)
	}
	return e.do(t, principal, "POST", "/v1/agents", bytes.NewReader(tgz), map[string]string{"Content-Type": "application/gzip"})
}

func agentFiles(name, js string) map[string]string {
	return map[string]string{"agent.json": `{"name":"` + name + `","entry":"agent.js","limits":{"idle_seconds":3600}}`, "agent.js": js}
}

// echoJS answers with what it received: method, path and query, the
// headers it was given, and the body's length.
const echoJS = `export default { async fetch(request) {
	const u = new URL(request.url);
	const h = {};
	for (const [k, v] of request.headers) h[k] = v;
	const body = await request.arrayBuffer();
	return Response.json({method: request.method, path: u.pathname, query: u.search, headers: h, length: body.byteLength},
		{status: Number(u.searchParams.get("status") || 200), headers: {"X-Agent": "yes", "Connection": "close, x-agent"}});
} }`

func problemOf(t testing.TB, resp *http.Response, body []byte) *api.Problem {
	t.Helper()
	p := &api.Problem{}
	if err := json.Unmarshal(body, p); err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("not a problem (%d %s): %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return p
}

// rawTarGz packs files as a bundle archive without validating them.
func rawTarGz(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestTrafficBodyCapClass: a request body to the traffic route is refused
// with 413 once it passes the session body limit, whether it is streamed
// (chunked) or announced, on the bare session URL and on sub-paths, and the
// host reads only a bounded amount of it; bodies within the limit reach
// the agent whole.
func TestTrafficBodyCapClass(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.deploy(t, "", agentFiles("echo", echoJS)); resp.StatusCode != 201 {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/agents/echo/sessions/s", "/agents/echo/sessions/s/up/load", "/agents/echo/sessions/s/?q=1"} {
		for _, tc := range []struct {
			name string
			body func() io.Reader
		}{
			{"streamed", func() io.Reader { return io.LimitReader(zeros{}, 64<<20) }},         // chunked: no length
			{"sized", func() io.Reader { return bytes.NewReader(make([]byte, bodyLimit+1)) }}, // Content-Length
		} {
			resp, body := e.do(t, "", "POST", path, tc.body(), nil)
			if resp.StatusCode != 413 || problemOf(t, resp, body).Kind() != api.KindTooLarge {
				t.Errorf("%s %s: %d %s, want 413 payload-too-large", tc.name, path, resp.StatusCode, body)
			}
		}
		resp, body := e.do(t, "", "POST", path, bytes.NewReader(make([]byte, bodyLimit-1024)), nil)
		var got struct{ Length int }
		if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || got.Length != bodyLimit-1024 {
			t.Errorf("%s under the limit: %d %s", path, resp.StatusCode, body)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 3 {
		if resp, _ := e.do(t, "", "POST", "/agents/echo/sessions/s/x", io.LimitReader(zeros{}, 64<<20), nil); resp.StatusCode != 413 {
			t.Fatalf("64 MiB request: %d", resp.StatusCode)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("refusing 3 x 64 MiB requests allocated %d MiB on the host; want a few MiB", grew>>20)
	}
}

// TestSessionRoutesProblemClass sends malformed and hostile requests to
// every session route: each is a 4xx problem+json with the stable kind
// (never a 5xx), and nothing is created by a refused request.
func TestSessionRoutesProblemClass(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.deploy(t, "alice", agentFiles("echo", echoJS)); resp.StatusCode != 201 {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	long := strings.Repeat("a", 200)
	gz := map[string]string{"Content-Type": "application/gzip"}
	cases := []struct {
		name, who, method, path string
		body                    string
		hdr                     map[string]string
		status                  int
		kind                    api.Kind
	}{
		{"deploy not gzip", "alice", "POST", "/v1/agents", "not a tarball", gz, 400, api.KindBadRequest},
		{"deploy empty", "alice", "POST", "/v1/agents", "", gz, 400, api.KindBadRequest},
		{"deploy too large", "alice", "POST", "/v1/agents", strings.Repeat("x", 5<<20), gz, 413, api.KindTooLarge},
		{"agent bad id", "alice", "GET", "/v1/agents/Bad%20Name", "", nil, 400, api.KindInvalidID},
		{"agent long id", "alice", "GET", "/v1/agents/" + long, "", nil, 400, api.KindInvalidID},
		{"agent missing", "", "GET", "/v1/agents/nope", "", nil, 404, api.KindNotFound},
		{"versions missing", "", "GET", "/v1/agents/nope/versions", "", nil, 404, api.KindNotFound},
		{"sessions missing agent", "", "GET", "/v1/agents/nope/sessions", "", nil, 404, api.KindNotFound},
		{"session missing", "alice", "GET", "/v1/agents/echo/sessions/none", "", nil, 404, api.KindNotFound},
		{"session bad id", "alice", "GET", "/v1/agents/echo/sessions/a%20b", "", nil, 400, api.KindInvalidID},
		{"delete missing", "alice", "DELETE", "/v1/agents/echo/sessions/none", "", nil, 404, api.KindNotFound},
		{"hibernate missing", "alice", "POST", "/v1/agents/echo/sessions/none/hibernate", "", nil, 404, api.KindNotFound},
		{"traffic bad session", "alice", "GET", "/agents/echo/sessions/" + long + "/x", "", nil, 400, api.KindInvalidID},
		{"traffic missing agent", "", "GET", "/agents/nope/sessions/s", "", nil, 404, api.KindNotFound},
		// Another tenant's ids.
		{"other's agent", "bob", "GET", "/v1/agents/echo", "", nil, 403, api.KindForbidden},
		{"other's versions", "bob", "GET", "/v1/agents/echo/versions", "", nil, 403, api.KindForbidden},
		{"other's sessions", "bob", "GET", "/v1/agents/echo/sessions", "", nil, 403, api.KindForbidden},
		{"other's traffic", "bob", "POST", "/agents/echo/sessions/s/x", "hi", nil, 403, api.KindForbidden},
		{"other's delete", "bob", "DELETE", "/v1/agents/echo/sessions/s", "", nil, 403, api.KindForbidden},
		{"other's hibernate", "bob", "POST", "/v1/agents/echo/sessions/s/hibernate", "", nil, 403, api.KindForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.who, tc.method, tc.path, strings.NewReader(tc.body), tc.hdr)
			p := problemOf(t, resp, body)
			if resp.StatusCode != tc.status || p.Kind() != tc.kind {
				t.Fatalf("%s %s: %d %s (%s), want %d %s", tc.method, tc.path, resp.StatusCode, p.Kind(), p.Detail, tc.status, tc.kind)
			}
		})
	}
	// A manifest problem names its field.
	resp, body := e.do(t, "alice", "POST", "/v1/agents", bytes.NewReader(rawTarGz(t, map[string]string{
		"agent.json": `{"name":"x","entry":"agent.js","limits":{"memory_mib":-1}}`, "agent.js": echoJS})), gz)
	if p := problemOf(t, resp, body); resp.StatusCode != 422 || p.Kind() != api.KindValidation || len(p.Errors) == 0 || !strings.Contains(p.Errors[0].Field, "memory_mib") {
		t.Fatalf("bad manifest: %d %s", resp.StatusCode, body)
	}
	// Nothing above created a session.
	if ss, err := e.m.Sessions(context.Background(), "echo"); err != nil || len(ss) != 0 {
		t.Fatalf("sessions after refused requests: %+v %v", ss, err)
	}
}

// TestTrafficHeadersClass: hop-by-hop headers and the caller's credentials
// never reach agent code, and the agent cannot send hop-by-hop headers back;
// the method, path and query reach it as sent.
func TestTrafficHeadersClass(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.deploy(t, "", agentFiles("echo", echoJS)); resp.StatusCode != 201 {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	for _, method := range []string{"GET", "PUT", "PATCH", "DELETE"} {
		resp, body := e.do(t, "", method, "/agents/echo/sessions/s/a/b?x=1&y=%20", nil, map[string]string{
			"Authorization": "Bearer secret-token", "Proxy-Authorization": "Basic x", "Te": "trailers", "X-Custom": "kept"})
		var got struct {
			Method, Path, Query string
			Headers             map[string]string
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil {
			t.Fatalf("%s: %d %s", method, resp.StatusCode, body)
		}
		if got.Method != method || got.Path != "/a/b" || got.Query != "?x=1&y=%20" || got.Headers["x-custom"] != "kept" {
			t.Errorf("%s reached the agent as %+v", method, got)
		}
		for _, h := range []string{"authorization", "proxy-authorization", "te"} {
			if v, ok := got.Headers[h]; ok {
				t.Errorf("%s: header %s reached the agent: %q", method, h, v)
			}
		}
		if resp.Header.Get("X-Agent") != "yes" || strings.Contains(resp.Header.Get("Connection"), "x-agent") {
			t.Errorf("%s: response headers %v", method, resp.Header)
		}
	}
	// An agent status outside 100-999 is answered 200; others pass.
	if resp, _ := e.do(t, "", "GET", "/agents/echo/sessions/s?status=418", nil, nil); resp.StatusCode != 418 {
		t.Errorf("status 418 came back as %d", resp.StatusCode)
	}
}

// TestAgentOwnershipClass: two principals through the routes. The first
// deployer owns the agent; the other's deploy over it is refused (the
// Manager asks the DeployAuthorizer the adapter builds from the API
// authorizer) and never replaces the owner's code, also when both deploy
// a new name at once; listings show each caller only their own agents,
// checked under session.Filtering.
func TestAgentOwnershipClass(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.deploy(t, "alice", agentFiles("a1", `export default { fetch() { return new Response("alice v1") } }`)); resp.StatusCode != 201 {
		t.Fatalf("alice deploy: %d %s", resp.StatusCode, body)
	}
	resp, body := e.deploy(t, "bob", agentFiles("a1", `export default { fetch() { return new Response("bob's") } }`))
	if p := problemOf(t, resp, body); resp.StatusCode != 403 || p.Kind() != api.KindForbidden {
		t.Fatalf("bob over alice's agent: %d %s", resp.StatusCode, body)
	}
	if _, out := e.do(t, "alice", "GET", "/agents/a1/sessions/s", nil, nil); string(out) != "alice v1" {
		t.Fatalf("alice's agent answers %q", out)
	}
	if resp, body := e.deploy(t, "bob", agentFiles("b1", `export default { fetch() { return new Response("b") } }`)); resp.StatusCode != 201 {
		t.Fatalf("bob deploy: %d %s", resp.StatusCode, body)
	}
	// Both deploy a new name at once: exactly one owns it, and the agent
	// runs that one's code.
	var wg sync.WaitGroup
	status := map[string]int{}
	var mu sync.Mutex
	for _, who := range []string{"alice", "bob"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.deploy(t, who, agentFiles("race", fmt.Sprintf(`export default { fetch() { return new Response(%q) } }`, who)))
			mu.Lock()
			status[who] = resp.StatusCode
			mu.Unlock()
		}()
	}
	wg.Wait()
	info, ok, err := e.m.AgentInfo(context.Background(), "race")
	if err != nil || !ok {
		t.Fatalf("race agent: %v %v", ok, err)
	}
	loser := map[string]string{"alice": "bob", "bob": "alice"}[info.Owner]
	if status[info.Owner] != 201 || status[loser] != 403 {
		t.Fatalf("owner %q; statuses %v", info.Owner, status)
	}
	if _, out := e.do(t, info.Owner, "GET", "/agents/race/sessions/s", nil, nil); string(out) != info.Owner {
		t.Fatalf("race agent runs %q's code, owner %q", out, info.Owner)
	}
	// Listings are filtered per caller.
	for who, want := range map[string]string{"alice": "a1,race", "bob": "b1,race", "": "a1,b1,race"} {
		if who != "" && who != info.Owner {
			want = map[string]string{"alice": "a1", "bob": "b1"}[who]
		}
		_, body := e.do(t, who, "GET", "/v1/agents", nil, nil)
		var list api.AgentList
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range list.Agents {
			names = append(names, a.Name)
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("%q lists %q, want %q", who, got, want)
		}
	}
	e.authz.mu.Lock()
	defer e.authz.mu.Unlock()
	if e.authz.filtered == 0 {
		t.Error("listing checks were not marked session.Filtering")
	}
}

// TestAuthorizeDeploysNeedsPrincipal: with a DeployAuthorizer, a deploy
// without a principal is refused as unauthenticated, not let through.
func TestAuthorizeDeploysNeedsPrincipal(t *testing.T) {
	e := newEnv(t)
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"x","entry":"agent.js"}`), "agent.js": []byte(echoJS)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.m.Deploy(context.Background(), session.Principal{}, b)
	var p *api.Problem
	if !errors.As(err, &p) || p.Kind() != api.KindUnauthenticated {
		t.Fatalf("deploy without a principal: %v", err)
	}
}

// FuzzTrafficRoute sends arbitrary methods, paths, queries, headers and
// bodies to the traffic route: the answer is the agent's or a 4xx
// problem, never a 5xx.
func FuzzTrafficRoute(f *testing.F) {
	for _, s := range [][4]string{{"GET", "/", "", ""}, {"POST", "/a/b", "x=1", "body"}, {"PUT", "/%2e%2e/x", "a=%zz", "\x00"},
		{"DELETE", "//", "q", ""}, {"OPTIONS", "/é", "é=1", strings.Repeat("b", 100)}, {"X-CUSTOM", "/a?b", "&&", "h"}} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	e := newEnv(f)
	if resp, body := e.deploy(f, "", agentFiles("echo", echoJS)); resp.StatusCode != 201 {
		f.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		u := e.srv.URL + "/agents/echo/sessions/s" + path
		if query != "" {
			u += "?" + query
		}
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Skip("not a request the client can send")
		}
		req.Header.Set("X-Fuzz", body)
		if req.Header.Get("X-Fuzz") != body {
			req.Header.Del("X-Fuzz")
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Skip("the client refused to send it")
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != 599 {
			t.Fatalf("%s %q ?%q: %d %s", method, path, query, resp.StatusCode, out)
		}
	})
}
