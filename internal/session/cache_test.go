package session

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

const cacheJS = `
export default {
  async fetch(request, env) {
    const u = new URL(request.url), q = (k) => u.searchParams.get(k);
    const key = "http://cached/" + q("k");
    try {
      switch (u.pathname) {
        case "/put": {
          const headers = q("cc") ? {"cache-control": q("cc")} : {};
          const body = q("n") ? "x".repeat(Number(q("n"))) : env.session.agent + "/" + env.session.id;
          await caches.default.put(key, new Response(body, {status: Number(q("status") || 200), headers}));
          return new Response("put");
        }
        case "/get": { const r = await caches.default.match(key); return new Response(r ? await r.text() : "miss"); }
        case "/del": return new Response(String(await caches.default.delete(key)));
        case "/post": await caches.default.put(new Request(key, {method: "POST", body: "b"}), new Response("r")); return new Response("put");
      }
    } catch (e) { return new Response(e.name); }
    return new Response("?", {status: 404});
  }
};`

// TestCacheAcrossSessionsClass: the Cache API's entries are shared by an
// agent's sessions on the node and seen by no other agent (nor by an agent
// deployed again under a deleted one's name), stay within the node's
// budget by evicting the least recently used, expire on the configured
// clock, and refuse what Workers refuses.
func TestCacheAcrossSessionsClass(t *testing.T) {
	clk := &testClock{now: time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)}
	m := openManager(t, t.TempDir(), func(c *testConfig) {
		c.Now = clk.Now
		c.JanitorInterval = time.Hour
		c.CacheBytes, c.CacheEntryBytes = 64<<10, 16<<10
	})
	for _, a := range []string{"cachea", "cacheb"} {
		deploy(t, m, `{"name":"`+a+`","entry":"agent.js","limits":{"idle_seconds":86400}}`, cacheJS)
	}
	expect := func(agent, id, path, want string) {
		t.Helper()
		if got := mustCall(t, m, agent, id, path); got != want {
			t.Fatalf("%s/%s %s: %q, want %q", agent, id, path, got, want)
		}
	}
	expect("cachea", "s1", "/put?k=k1", "put")
	expect("cachea", "s2", "/get?k=k1", "cachea/s1") // another session of the agent
	expect("cacheb", "s1", "/get?k=k1", "miss")      // another agent
	expect("cacheb", "s1", "/put?k=k1", "put")
	expect("cachea", "s2", "/get?k=k1", "cachea/s1")
	expect("cacheb", "s2", "/get?k=k1", "cacheb/s1")
	expect("cacheb", "s2", "/del?k=k1", "true")
	expect("cachea", "s1", "/get?k=k1", "cachea/s1")

	// Refused puts.
	expect("cachea", "s1", "/post?k=p", "TypeError")
	expect("cachea", "s1", "/put?k=p&status=206", "TypeError")
	expect("cachea", "s1", "/put?k=p&n=20000", "RangeError")
	expect("cachea", "s1", "/put?k=p&cc=no-store", "put")
	expect("cachea", "s2", "/get?k=p", "miss")

	// Expiry on the manager's clock.
	expect("cachea", "s1", "/put?k=ttl&cc=max-age%3D30", "put")
	clk.Advance(20 * time.Second)
	expect("cachea", "s2", "/get?k=ttl", "cachea/s1")
	clk.Advance(11 * time.Second)
	expect("cachea", "s2", "/get?k=ttl", "miss")

	// Eviction: many entries of 8 KB in a 64 KiB budget.
	for i := range 30 {
		expect("cacheb", "s1", "/put?n=8000&k=e"+strings.Repeat("x", i), "put")
		if u := m.caches.Used(); u > 64<<10 {
			t.Fatalf("the cache holds %d bytes, over its budget", u)
		}
	}
	expect("cachea", "s1", "/get?k=k1", "miss") // the least recently used went first
	expect("cacheb", "s1", "/get?k=e", "miss")
	if got := mustCall(t, m, "cacheb", "s1", "/get?k=e"+strings.Repeat("x", 29)); len(got) != 8000 {
		t.Fatalf("the newest entry: %d bytes", len(got))
	}

	// A pipeline's scratch session, of an agent not deployed yet or of a
	// deployed one, has a cache of its own.
	ctx := context.Background()
	expect("cachea", "s1", "/put?k=prod", "put")
	for _, agent := range []string{"cachec", "cachea"} {
		b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"` + agent + `","entry":"agent.js"}`), "agent.js": []byte(cacheJS + "\n// v2")})
		if err != nil {
			t.Fatal(err)
		}
		v, err := m.StoreVersion(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := m.NewScratch(ctx, agent, v.Digest, "run-1")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ path, want string }{{"/get?k=prod", "miss"}, {"/put?k=sc", "put"}, {"/get?k=sc", agent + "/~scratch-run-1"}} {
			resp, err := sc.Call(ctx, isolate.Request{Method: "GET", URL: "http://session" + c.path})
			if err != nil || string(resp.Body) != c.want {
				t.Fatalf("scratch of %s %s: %q %v, want %q", agent, c.path, resp.Body, err, c.want)
			}
		}
		n := m.caches.Len()
		_ = sc.Close(ctx)
		// Closed, its entries cannot be reached again: they go with it.
		if got := m.caches.Len(); got != n-1 {
			t.Errorf("scratch of %s closed: %d cache entries, want %d", agent, got, n-1)
		}
	}
	expect("cachea", "s1", "/get?k=sc", "miss")

	// An agent deleted and deployed again starts with an empty cache.
	expect("cachea", "s1", "/put?k=again", "put")
	if err := m.DeleteAgent(ctx, "cachea"); err != nil {
		t.Fatal(err)
	}
	deploy(t, m, `{"name":"cachea","entry":"agent.js","limits":{"idle_seconds":86400}}`, cacheJS)
	expect("cachea", "s1", "/get?k=again", "miss")
}
