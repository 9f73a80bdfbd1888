package session

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/store"
)

var testRuntime *isolate.Runtime

func TestMain(m *testing.M) {
	os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int { testRuntime = rt; return m.Run() }))
}

// loopbackFetcher is the real egress proxy, allowed to reach loopback test
// servers, deciding by the manifest allowlist like the daemon does.
type loopbackFetcher struct{ p *egress.Proxy }

func (f loopbackFetcher) Fetch(ctx context.Context, c Caller, req *http.Request) (*http.Response, error) {
	return f.p.Do(ctx, egress.Caller{ID: c.Agent + "/" + c.Session, Purpose: egress.PurposeSession,
		Agent: c.Agent, Session: c.Session, Allow: c.Egress}, req)
}

func newFetcher(t testing.TB) Fetcher {
	p, err := egress.New(egress.Config{UnsafeAllowLoopback: true,
		Decider: egress.DeciderFunc(func(ctx context.Context, r egress.Request) (egress.Decision, error) {
			if secrets.HostAllowed(r.Caller.Allow, r.Host) {
				return egress.Decision{Verdict: egress.Allow}, nil
			}
			return egress.Decision{Verdict: egress.Deny, Reason: "host " + r.Host + " is not in the manifest"}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return loopbackFetcher{p}
}

// testConfig is what a test may change of a manager: its Config and the
// Bindings it starts with.
type testConfig struct {
	Config
	Bindings
}

func openManager(t testing.TB, dir string, opts ...func(*testConfig)) *Manager {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig{Config: Config{Store: st, Runtime: testRuntime, JanitorInterval: 50 * time.Millisecond},
		Bindings: Bindings{Fetcher: newFetcher(t)}}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(context.Background(), cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), cfg.Bindings); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Close(context.Background())
		_ = st.Close()
	})
	return m
}

func deploy(t testing.TB, m *Manager, manifest, code string) api.AgentVersion {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest), "agent.js": []byte(code)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.Deploy(context.Background(), Principal{}, b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func call(t testing.TB, m *Manager, agent, id, method, path, body string) (int, string, error) {
	t.Helper()
	resp, err := m.Call(context.Background(), agent, id, isolate.Request{Method: method, URL: "http://agents.local" + path, Body: []byte(body)})
	if err != nil {
		return 0, "", err
	}
	return resp.Status, string(resp.Body), nil
}

func mustCall(t testing.TB, m *Manager, agent, id, path string) string {
	t.Helper()
	status, body, err := call(t, m, agent, id, "GET", path, "")
	if err != nil || status != 200 {
		t.Fatalf("call %s/%s %s: %d %q %v", agent, id, path, status, body, err)
	}
	return body
}

const counterJS = `
let hits = 0;
export default {
  async fetch(request, env) {
    hits++;
    const url = new URL(request.url);
    if (url.pathname === "/boom") {
      await env.state.put("a", 1);
      await env.state.put("b", 2);
      throw new Error("boom after two puts");
    }
    if (url.pathname === "/two") {
      await env.state.put("a", 1);
      await env.state.put("b", 2);
      return new Response("ok");
    }
    if (url.pathname === "/incr") {
      const n = (await env.state.get("n")) || 0;
      await new Promise(r => setTimeout(r, 1));
      await env.state.put("n", n + 1);
      return Response.json({n: n + 1});
    }
    if (url.pathname === "/get") {
      return Response.json({a: await env.state.get("a"), b: await env.state.get("b"), n: await env.state.get("n"),
        list: (await env.state.list({prefix: ""})).size});
    }
    const stored = ((await env.state.get("stored")) || 0) + 1;
    await env.state.put("stored", stored);
    return Response.json({global: hits, stored, session: env.session.id, agent: env.session.agent});
  }
};`

const counterManifest = `{"name":"counter","entry":"agent.js","limits":{"idle_seconds":3600}}`

func TestGlobalsSurviveHibernationAndRestart(t *testing.T) {
	dir := t.TempDir()
	m := openManager(t, dir)
	deploy(t, m, counterManifest, counterJS)
	var got struct{ Global, Stored int }
	for i := 1; i <= 3; i++ {
		_ = json.Unmarshal([]byte(mustCall(t, m, "counter", "s1", "/")), &got)
		if got.Global != i || got.Stored != i {
			t.Fatalf("call %d: %+v", i, got)
		}
	}
	if err := m.Hibernate(context.Background(), "counter", "s1"); err != nil {
		t.Fatal(err)
	}
	info, err := m.Session(context.Background(), "counter", "s1")
	if err != nil || info.State != "hibernated" || info.SnapshotBytes == 0 {
		t.Fatalf("after hibernate: %+v %v", info, err)
	}
	_ = json.Unmarshal([]byte(mustCall(t, m, "counter", "s1", "/")), &got)
	if got.Global != 4 || got.Stored != 4 {
		t.Fatalf("after restore: %+v", got)
	}
	// Restart: Close hibernates every live session; a new manager on the
	// same store restores the heap.
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = m.cfg.Store.Close()
	m2 := openManager(t, dir)
	_ = json.Unmarshal([]byte(mustCall(t, m2, "counter", "s1", "/")), &got)
	if got.Global != 5 || got.Stored != 5 {
		t.Fatalf("after restart: %+v", got)
	}
	// Another session has its own globals.
	_ = json.Unmarshal([]byte(mustCall(t, m2, "counter", "s2", "/")), &got)
	if got.Global != 1 || got.Stored != 1 {
		t.Fatalf("fresh session: %+v", got)
	}
}

func TestAtomicWrites(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, counterManifest, counterJS)
	_, _, err := call(t, m, "counter", "s", "GET", "/boom", "")
	if !api.IsKind(err, api.KindAgentError) || !strings.Contains(err.Error(), "boom after two puts") {
		t.Fatalf("boom: want agent-error with the message, got %v", err)
	}
	body := mustCall(t, m, "counter", "s", "/get")
	if body != `{"list":0}` {
		t.Fatalf("a request that threw left writes behind: %s", body)
	}
	mustCall(t, m, "counter", "s", "/two")
	body = mustCall(t, m, "counter", "s", "/get")
	if !strings.Contains(body, `"a":1`) || !strings.Contains(body, `"b":2`) || !strings.Contains(body, `"list":2`) {
		t.Fatalf("committed writes missing: %s", body)
	}
}

func TestInputGate(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, counterManifest, counterJS)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := call(t, m, "counter", "g", "POST", "/incr", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if body := mustCall(t, m, "counter", "g", "/get"); !strings.Contains(body, `"n":20`) {
		t.Fatalf("lost updates: concurrent requests interleaved: %s", body)
	}
}

func TestManySessionsInParallel(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, counterManifest, counterJS)
	n := 1000
	if testing.Short() {
		n = 200
	}
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body := mustCall(t, m, "counter", fmt.Sprintf("p%d", i), "/")
			if !strings.Contains(body, fmt.Sprintf(`"session":"p%d"`, i)) {
				t.Errorf("wrong session answered: %s", body)
			}
		})
	}
	wg.Wait()
	if st := m.Stats(); st.Live != n {
		t.Fatalf("live sessions %d, want %d", st.Live, n)
	}
}

func TestLimitsContained(t *testing.T) {
	m := openManager(t, t.TempDir())
	// cpu_ms leaves the memory bomb (~0.2 s of allocating until the heap is
	// full) room on a loaded machine; the loop still runs into it.
	deploy(t, m, `{"name":"bad","entry":"agent.js","limits":{"memory_mib":16,"cpu_ms":2000,"wall_ms":5000}}`, `
export default {
  async fetch(request) {
    const p = new URL(request.url).pathname;
    if (p === "/loop") { for (;;) {} }
    if (p === "/bomb") { const a = []; for (;;) a.push(new Array(1000000).fill(1)); }
    if (p === "/recurse") { const f = n => f(n + 1) + 1; try { f(0) } catch (e) { return new Response(e.name) } }
    if (p === "/recurse-uncaught") { const f = n => f(n + 1) + 1; f(0) }
    return new Response("fine");
  }
};`)
	deploy(t, m, counterManifest, counterJS)
	for _, tc := range []struct {
		path string
		kind api.Kind
	}{
		{"/loop", api.KindSessionTimeout},
		{"/bomb", api.KindSessionMemoryExceeded},
		{"/recurse-uncaught", api.KindAgentError},
	} {
		_, _, err := call(t, m, "bad", "x", "GET", tc.path, "")
		if !api.IsKind(err, tc.kind) {
			t.Errorf("%s: want %s, got %v", tc.path, tc.kind, err)
		}
		// The session and its neighbours keep working.
		if body := mustCall(t, m, "bad", "x", "/"); body != "fine" {
			t.Errorf("after %s: %q", tc.path, body)
		}
		mustCall(t, m, "counter", "neighbour", "/")
	}
	if body := mustCall(t, m, "bad", "x", "/recurse"); body != "RangeError" {
		t.Errorf("deep recursion: want a catchable RangeError, got %q", body)
	}
}

func TestAlarmFiresAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	m := openManager(t, dir)
	deploy(t, m, `{"name":"rem","entry":"agent.js"}`, `
export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/set") {
      await env.state.setAlarm(Date.now() + 1500);
      return new Response(String(await env.state.getAlarm() > Date.now()));
    }
    return Response.json({fired: (await env.state.get("fired")) || 0});
  },
  async alarm(env) {
    await env.state.put("fired", ((await env.state.get("fired")) || 0) + 1);
  }
};`)
	if body := mustCall(t, m, "rem", "a", "/set"); body != "true" {
		t.Fatalf("set: %q", body)
	}
	info, _ := m.Session(context.Background(), "rem", "a")
	if info.Alarm == nil {
		t.Fatal("alarm not recorded on the session")
	}
	_ = m.Close(context.Background())
	_ = m.cfg.Store.Close()
	m2 := openManager(t, dir)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if body := mustCall(t, m2, "rem", "a", "/"); body == `{"fired":1}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alarm did not fire after restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	info, _ = m2.Session(context.Background(), "rem", "a")
	if info.Alarm != nil {
		t.Fatalf("alarm still set after firing: %v", info.Alarm)
	}
}

func TestIdleHibernationAndDelete(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"idle","entry":"agent.js","limits":{"idle_seconds":1}}`, counterJS)
	mustCall(t, m, "idle", "s", "/")
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := m.Session(context.Background(), "idle", "s")
		if err == nil && info.State == "hibernated" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session did not hibernate when idle: %+v", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body := mustCall(t, m, "idle", "s", "/"); !strings.Contains(body, `"global":2`) {
		t.Fatalf("after idle hibernation: %s", body)
	}
	if err := m.Delete(context.Background(), "idle", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Session(context.Background(), "idle", "s"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("deleted session still there: %v", err)
	}
	if body := mustCall(t, m, "idle", "s", "/"); !strings.Contains(body, `"global":1,"stored":1`) {
		t.Fatalf("recreated session kept old state: %s", body)
	}
}

func TestFetchAllowlist(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "upstream says hi")
	}))
	defer up.Close()
	m := openManager(t, t.TempDir())
	code := `export default { async fetch(request) {
  const target = new URL(request.url).searchParams.get("u");
  try { const r = await fetch(target); return new Response(await r.text()); }
  catch (e) { return new Response("refused: " + e.message, {status: 403}); }
}};`
	deploy(t, m, `{"name":"fetcher","entry":"agent.js","egress":["127.0.0.1"]}`, code)
	if body := mustCall(t, m, "fetcher", "s", "/?u="+up.URL); body != "upstream says hi" {
		t.Fatalf("allowed fetch: %q", body)
	}
	deploy(t, m, `{"name":"fetcher","entry":"agent.js","egress":["api.example.com"]}`, code)
	status, body, err := call(t, m, "fetcher", "s", "GET", "/?u="+up.URL, "")
	if err != nil || status != 403 || !strings.Contains(body, "not in the manifest") {
		t.Fatalf("fetch to unlisted host: %d %q %v", status, body, err)
	}
}

func TestDeployErrors(t *testing.T) {
	m := openManager(t, t.TempDir())
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"broken","entry":"agent.js"}`), "agent.js": []byte("export default {")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Deploy(context.Background(), Principal{}, b)
	if !api.IsKind(err, api.KindValidation) {
		t.Fatalf("syntax error: want validation problem, got %v", err)
	}
	if _, _, err := call(t, m, "nobody", "s", "GET", "/", ""); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("unknown agent: %v", err)
	}
}
