package isolate

import (
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the cache's expiry decisions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCacheAPIClass: caches.default and caches.open(name) store and match
// responses as Workers' Cache API does: GET only (ignoreMethod for match
// and delete), keys by URL without the fragment, separate caches by name,
// bodies read fully (streams too) within the entry cap; no-store,
// private, Set-Cookie and a lifetime already over are dropped quietly;
// 206, Vary: *, a used body, non-GET puts and bogus arguments are
// TypeErrors (a body over the cap a RangeError); max-age, s-maxage and
// Expires expire entries on the host's clock.
func TestCacheAPIClass(t *testing.T) {
	iso := harness(t)
	h := newMemHost()
	clock := &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	h.caches = NewCacheStore(0, 1<<20, clock.now)
	errName := `globalThis.en = async (f) => { try { await f(); return "no error"; } catch (e) { return e.name; } }, "ok"`
	runJSCases(t, iso, h, []jsCase{
		{"helpers", errName, `"ok"`},
		{"put and match", `(async () => { const r0 = new Response("hello", {headers: {"content-type": "text/x", "cache-control": "max-age=60"}});
			const p = await caches.default.put("http://x/a?q=1", r0); const r = await caches.default.match("http://x/a?q=1");
			return [p, r0.bodyUsed, r instanceof Response, r.status, await r.text(), r.headers.get("content-type"), r.headers.get("cf-cache-status")] })()`,
			`[null,true,true,200,"hello","text/x","HIT"]`},
		{"request key without fragment", `(async () => { const r = await caches.default.match(new Request("http://x/a?q=1#frag")); return r && await r.text() })()`, `"hello"`},
		{"miss", `(async () => [await caches.default.match("http://x/none"), await caches.default.match("http://x/a")])()`, `[null,null]`},
		{"named caches", `(async () => { const c = await caches.open("c1"); await c.put("http://x/b", new Response("in c1"));
			return [c === await caches.open("c1"), c instanceof Cache, caches instanceof CacheStorage, await caches.default.match("http://x/b"), await (await caches.open("c2")).match("http://x/b"), await (await c.match("http://x/b")).text()] })()`,
			`[true,true,true,null,null,"in c1"]`},
		{"binary, status and null body", `(async () => { await caches.default.put("http://x/bin", new Response(new Uint8Array([0, 255, 7]), {status: 404, statusText: "Gone Fishing"}));
			await caches.default.put("http://x/empty", new Response(null, {status: 204}));
			const b = await caches.default.match("http://x/bin"), e = await caches.default.match("http://x/empty");
			return [b.status, b.statusText, Array.from(new Uint8Array(await b.arrayBuffer())), e.status, e.body] })()`,
			`[404,"Gone Fishing",[0,255,7],204,null]`},
		{"stream body", `(async () => { const s = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("str")); c.enqueue(new Uint8Array([101, 97, 109])); c.close(); } });
			const r = new Response(s); await caches.default.put("http://x/s", r); return [r.bodyUsed, await (await caches.default.match("http://x/s")).text()] })()`,
			`[true,"stream"]`},
		{"methods", `(async () => { const post = new Request("http://x/a?q=1", {method: "POST", body: "b"}), head = new Request("http://x/a?q=1", {method: "HEAD"});
			return [await caches.default.match(post), await caches.default.match(head), (await caches.default.match(post, {ignoreMethod: true})).status,
				await caches.default.delete(post), await en(() => caches.default.put(post, new Response("r")))] })()`,
			`[null,null,200,false,"TypeError"]`},
		{"delete", `(async () => [await caches.default.delete("http://x/bin"), await caches.default.delete("http://x/bin"), await caches.default.match("http://x/bin"),
			await caches.default.delete(new Request("http://x/s", {method: "DELETE"}), {ignoreMethod: true}), await caches.default.match("http://x/s")])()`,
			`[true,false,null,true,null]`},
		{"dropped quietly", `(async () => { const hs = [{"cache-control": "no-store"}, {"cache-control": "public, PRIVATE"}, {"set-cookie": "a=1"}, {"cache-control": "max-age=0"},
				{"expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, {"expires": "not a date"}, {"cache-control": "s-maxage=0, max-age=100"}];
			const out = [];
			for (const [i, headers] of hs.entries()) { await caches.default.put("http://x/q" + i, new Response("x", {headers})); out.push(await caches.default.match("http://x/q" + i)); }
			return out })()`,
			`[null,null,null,null,null,null,null]`},
		{"refused", `(async () => { const used = new Response("u"); await used.text();
			const locked = new Response(new ReadableStream()); locked.body.getReader();
			return [await en(() => caches.default.put("http://x/r", new Response("p", {status: 206}))),
				await en(() => caches.default.put("http://x/r", new Response("v", {headers: {vary: "accept, *"}}))),
				await en(() => caches.default.put("http://x/r", used)), await en(() => caches.default.put("http://x/r", locked)),
				await caches.default.match("http://x/r")] })()`,
			`["TypeError","TypeError","TypeError","TypeError",null]`},
		{"vary other", `(async () => { await caches.default.put("http://x/v", new Response("v", {headers: {vary: "accept"}})); return (await caches.default.match("http://x/v")).status })()`, `200`},
		{"bogus arguments", `(async () => Promise.all([() => caches.default.match(), () => caches.default.put("http://x/z"), () => caches.default.put("http://x/z", "text"),
			() => caches.default.put("http://x/z", {status: 200, headers: new Headers(), body: null}), () => caches.default.match("not a url"), () => caches.default.put("ftp://x/z", new Response("f")),
			() => caches.default.delete(null), () => Cache.prototype.match.call({}, "http://x/a"), () => new Cache(), () => new CacheStorage(), () => caches.open(),
			() => caches.open("n".repeat(2000)), () => Reflect.construct(Cache, [])].map(en)))()`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError"]`},
		{"huge bodies", `(async () => { let pulled = 0, cancelled = false;
			const s = new ReadableStream({ pull(c) { pulled++; c.enqueue(new Uint8Array(256 << 10)); }, cancel() { cancelled = true; } });
			return [await en(() => caches.default.put("http://x/huge", new Response(new Uint8Array(2 << 20)))),
				await en(() => caches.default.put("http://x/huge", new Response(s))), pulled < 10, cancelled, await caches.default.match("http://x/huge")] })()`,
			`["RangeError","RangeError",true,true,null]`},
		{"not a byte stream", `en(() => caches.default.put("http://x/t", new Response(new ReadableStream({ start(c) { c.enqueue("text"); c.close(); } }))))`, `"TypeError"`},
		{"clone refused", `Promise.all([en(() => structuredClone(caches)), en(() => structuredClone(caches.default))])`, `["DataCloneError","DataCloneError"]`},
		{"lifetimes", fmt.Sprintf(`(async () => { const put = (p, headers) => caches.default.put("http://x/" + p, new Response(p, {headers}));
			await put("m10", {"cache-control": "max-age=10"}); await put("s10", {"cache-control": "max-age=1000, s-maxage=10"});
			await put("e10", {expires: %q}); await put("e1000", {expires: %q}); await put("none", {});
			return "ok" })()`, clock.now().Add(10*time.Second).Format(http.TimeFormat), clock.now().Add(1000*time.Second).Format(http.TimeFormat)), `"ok"`},
	})
	clock.add(11 * time.Second)
	runJSCases(t, iso, h, []jsCase{
		{"expired", `(async () => { const out = []; for (const p of ["m10", "s10", "e10", "e1000", "none"]) { const r = await caches.default.match("http://x/" + p); out.push(r ? await r.text() : null); } return out })()`,
			`[null,null,null,"e1000","none"]`},
	})
}

// TestCacheStoreClass: the node's store keeps agents apart, stays within
// its byte budget by evicting the least recently used entries, refuses an
// entry over its cap, and expires entries on its clock.
func TestCacheStoreClass(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := NewCacheStore(64<<10, 8<<10, clock.now)
	resp := func(n int, hs ...[2]string) CachedResponse {
		return CachedResponse{Status: 200, Headers: hs, Body: []byte(strings.Repeat("x", n))}
	}
	if ok, err := s.Put("a", "", "http://h/1", resp(10)); !ok || err != nil {
		t.Fatalf("put: %v %v", ok, err)
	}
	if _, ok := s.Match("b", "", "http://h/1"); ok {
		t.Fatal("agent b sees agent a's entry")
	}
	if s.Delete("b", "", "http://h/1") {
		t.Fatal("agent b deleted agent a's entry")
	}
	if _, ok := s.Match("a", "", "http://h/1"); !ok {
		t.Fatal("agent a lost its entry")
	}
	if _, err := s.Put("a", "", "http://h/big", resp(9<<10)); err == nil {
		t.Fatal("an entry over the cap was stored")
	}
	// Headers count, and are weighed before they are read: megabytes of
	// Cache-Control or Vary list items cost no allocation per item.
	for _, h := range []string{"cache-control", "vary"} {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, errBig := s.Put("a", "", "http://h/hdr", resp(0, [2]string{h, strings.Repeat("a,", 4<<20)}))
		big := NewCacheStore(64<<20, 16<<20, clock.now)
		okList, errList := big.Put("a", "", "http://h/hdr", resp(0, [2]string{h, strings.Repeat("a,", 4<<20)}))
		runtime.ReadMemStats(&ms1)
		var se *SizeError
		if !errors.As(errBig, &se) || !okList || errList != nil {
			t.Errorf("%s of 8 MiB: over the cap %v; under a cap it fits %v %v", h, errBig, okList, errList)
		}
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 32<<20 {
			t.Errorf("%s of 8 MiB: %d MiB allocated", h, grew>>20)
		}
	}
	// Many keys: the budget holds, the oldest go first, a recently used
	// one stays.
	for i := range 1000 {
		if _, err := s.Put("a", "", fmt.Sprintf("http://h/k%d", i), resp(1000)); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.Match("a", "", "http://h/k0"); !ok && i < 50 {
			t.Fatalf("k0, used at every put, evicted at %d", i)
		}
		if s.Used() > 64<<10 {
			t.Fatalf("used %d over the budget", s.Used())
		}
	}
	if _, ok := s.Match("a", "", "http://h/k1"); ok {
		t.Error("the oldest entry was not evicted")
	}
	if _, ok := s.Match("a", "", "http://h/k999"); !ok {
		t.Error("the newest entry was evicted")
	}
	if n := s.Len(); n < 40 || n > 64 {
		t.Errorf("%d entries in 64 KiB of 1 KB ones", n)
	}
	// Expiry and policy.
	if ok, _ := s.Put("a", "", "http://h/ttl", resp(1, [2]string{"Cache-Control", "max-age=5"})); !ok {
		t.Fatal("max-age=5 not stored")
	}
	if ok, _ := s.Put("a", "", "http://h/cookie", resp(1, [2]string{"Set-Cookie", "a=b"})); ok {
		t.Fatal("a Set-Cookie response was stored")
	}
	if _, err := s.Put("a", "", "http://h/206", CachedResponse{Status: 206}); err == nil {
		t.Fatal("a 206 was stored")
	}
	clock.add(5 * time.Second)
	if _, ok := s.Match("a", "", "http://h/ttl"); ok {
		t.Error("an expired entry matched")
	}
}
