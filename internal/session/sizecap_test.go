package session

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// capRuntime is a runtime whose isolates carry at most limit bytes per
// message (the compiled engine comes from a cache shared by test runs).
func capRuntime(t testing.TB, limit int) *isolate.Runtime {
	t.Helper()
	rt, err := isolate.NewRuntime(context.Background(), isolate.Config{MaxBodyBytes: limit,
		CacheDir: filepath.Join(os.TempDir(), "agentcloud-session-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	return rt
}

const bigJS = `export default { async fetch(request, env) {
  const u = new URL(request.url), n = Number(u.searchParams.get("n") || 0);
  const refused = (e) => new Response(e.name + ": " + e.message, {status: 413});
  switch (u.pathname) {
  case "/text": return new Response("A".repeat(n));
  case "/bytes": return new Response(new Uint8Array(n));
  case "/throw": throw new Error("A".repeat(n));
  case "/log": try { console.log("A".repeat(n)); return new Response("logged"); } catch (e) { return refused(e); }
  case "/put": try { await env.state.put("k", "A".repeat(n)); return new Response("put"); } catch (e) { return refused(e); }
  case "/encode": try { new TextEncoder().encode("A".repeat(n)); return new Response("encoded"); } catch (e) { return refused(e); }
  case "/fetch": try { const r = await fetch(u.searchParams.get("u")); return new Response(String((await r.arrayBuffer()).byteLength)); } catch (e) { return refused(e); }
  case "/echo": return new Response(String((await request.arrayBuffer()).byteLength));
  }
  return new Response("ok");
} };`

// responseWAT answers every request with a response buffer of n bytes
// (memory pages of 64 KiB hold it).
func responseWAT(pages, n int) string {
	return fmt.Sprintf(`(module
  (memory (export "memory") %d)
  (func (export "ac_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "ac_free") (param i32))
  (func (export "ac_fetch") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const %d))))`, pages, n)
}

// TestBodySizeCapClass checks the session body limit on every way a body
// enters or leaves a session: responses (text and binary, JavaScript and
// raw wasm) are refused by their length before the host copies them, and
// the session keeps working; request bodies are refused before activation
// (Call, as the HTTP route, call_agent and env bindings use it; the route
// itself refuses while streaming, sessionhttp TestTrafficBodyCapClass);
// host-call arguments (console, state, TextEncoder) and
// fetch responses coming in are refused by length with an error the agent
// can catch; a huge exception message is cut. The attack that drove the
// daemon to 7.7 GB (a 40 MB string returned three times) allocates a small,
// bounded amount on the host.
func TestBodySizeCapClass(t *testing.T) {
	const limit = 1 << 20
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Runtime = capRuntime(t, limit) })
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("u"), 3<<20))
	}))
	defer up.Close()
	deploy(t, m, `{"name":"big","entry":"agent.js","egress":["127.0.0.1"],"limits":{"memory_mib":256,"cpu_ms":20000,"wall_ms":30000,"idle_seconds":3600}}`, bigJS)
	if err := deployWasm(t, m, `{"name":"wbig","entry":"agent.wasm","runtime":"wasm","limits":{"memory_mib":8}}`,
		assembleWAT(t, responseWAT(40, 2<<20))); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	get := func(agent, path string) (isolate.Response, error) {
		return m.Call(ctx, agent, "s", isolate.Request{Method: "GET", URL: "http://x" + path})
	}
	for _, tc := range []struct {
		agent, path string
		kind        api.Kind
		status      int
		body        string
	}{
		{"big", fmt.Sprintf("/text?n=%d", limit-1024), "", 200, ""},
		{"big", fmt.Sprintf("/text?n=%d", limit+1), api.KindAgentResponseTooLarge, 0, ""},
		{"big", fmt.Sprintf("/bytes?n=%d", limit+1), api.KindAgentResponseTooLarge, 0, ""},
		{"wbig", "/", api.KindAgentResponseTooLarge, 0, ""},
		{"big", fmt.Sprintf("/log?n=%d", limit+1), "", 413, "RangeError: a host call argument is"},
		{"big", fmt.Sprintf("/put?n=%d", limit+1), "", 413, "RangeError: a host call argument is"},
		{"big", fmt.Sprintf("/encode?n=%d", limit+1), "", 413, "RangeError: a host call argument is"},
		{"big", "/fetch?u=" + up.URL, "", 413, "larger than the session body limit"},
	} {
		resp, err := get(tc.agent, tc.path)
		if tc.kind != "" {
			if !api.IsKind(err, tc.kind) || api.AsProblem(err).Status != 502 {
				t.Errorf("%s %s: %v, want a 502 %s", tc.agent, tc.path, err, tc.kind)
			}
		} else if err != nil || resp.Status != tc.status || !strings.Contains(string(resp.Body), tc.body) {
			t.Errorf("%s %s: %d %.200q %v, want %d %q", tc.agent, tc.path, resp.Status, resp.Body, err, tc.status, tc.body)
		}
		if tc.agent == "big" { // the session is still alive and answers
			if resp, err := get("big", "/"); err != nil || string(resp.Body) != "ok" {
				t.Errorf("after %s: %q %v", tc.path, resp.Body, err)
			}
		}
	}
	_, err := get("big", "/throw?n=4000000")
	if !api.IsKind(err, api.KindAgentError) || len(err.Error()) > 64<<10 {
		t.Errorf("a 4 MB exception message: %d bytes of error %.100v, want an agent-error cut short", len(err.Error()), err)
	}

	// Request bodies: Call refuses before activating; the route while reading.
	_, err = m.Call(ctx, "big", "fresh", isolate.Request{Method: "POST", URL: "http://x/echo", Body: make([]byte, limit+1)})
	if !api.IsKind(err, api.KindTooLarge) || api.AsProblem(err).Status != 413 {
		t.Errorf("request body over the limit: %v, want 413", err)
	}
	if _, err := m.Session(ctx, "big", "fresh"); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("a refused request created its session: %v", err)
	}
	if resp, err := m.Call(ctx, "big", "s", isolate.Request{Method: "POST", URL: "http://x/echo", Body: make([]byte, limit-1024)}); err != nil || string(resp.Body) != fmt.Sprint(limit-1024) {
		t.Errorf("request body under the limit: %q %v", resp.Body, err)
	}

	// Host allocation does not grow with the attack. TotalAlloc counts the
	// whole test binary (other tests of the package run beside this one),
	// so the least of three rounds is judged: a copy of the responses would
	// be in every round, a neighbour's allocations are not.
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 3 {
			if _, err := get("big", "/text?n=40000000"); !api.IsKind(err, api.KindAgentResponseTooLarge) {
				t.Fatalf("40 MB response: %v", err)
			}
		}
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > 32<<20 {
		t.Errorf("refusing 3 x 40 MB responses allocated at least %d MiB on the host; want a few MiB", least>>20)
	} else {
		t.Logf("refusing 3 x 40 MB responses allocated %.1f MiB on the host", float64(least)/(1<<20))
	}
}

// BenchmarkOversizedResponseRefused measures what refusing a 40 MB response
// costs the host (B/op): it is refused by its length, so the host never
// holds the body.
func BenchmarkOversizedResponseRefused(b *testing.B) {
	m := openManager(b, b.TempDir(), func(c *testConfig) { c.Runtime = capRuntime(b, 1<<20) })
	deploy(b, m, `{"name":"big","entry":"agent.js","limits":{"memory_mib":256,"cpu_ms":20000,"wall_ms":30000,"idle_seconds":3600}}`, bigJS)
	b.ReportAllocs()
	for b.Loop() {
		_, err := m.Call(context.Background(), "big", "s", isolate.Request{URL: "http://x/text?n=40000000"})
		if !api.IsKind(err, api.KindAgentResponseTooLarge) {
			b.Fatal(err)
		}
	}
}
