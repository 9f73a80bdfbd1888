package isolate

import (
	"context"
	"testing"
)

func TestExpMicro(t *testing.T) {
	rt, err := NewRuntime(context.Background(), Config{CooperativeTimeouts: true, CacheDir: "/tmp/coopcache"})
	if err != nil {
		t.Fatal(err)
	}
	iso, err := rt.New(context.Background(), Spec{Module: `
const N = 2000;
function time(name, f) { const t0 = Date.now(); for (let i = 0; i < N; i++) f(); return name + "=" + ((Date.now() - t0) * 1000 / N).toFixed(1) + "us "; }
export default { fetch() {
  let s = "";
  s += time("empty", () => {});
  s += time("url", () => new URL("http://agent/p?q=1"));
  s += time("headers", () => new Headers());
  s += time("headersSet", () => { const h = new Headers(); h.set("content-type", "text/plain"); });
  s += time("request", () => new Request("http://agent/p?q=1", { method: "GET", headers: [] }));
  s += time("response", () => new Response("hello"));
  s += time("json", () => JSON.parse('{"method":"GET","url":"http://agent/p?q=1","headers":[]}'));
  s += time("stringify", () => JSON.stringify({status: 200, statusText: "OK", headers: [["content-type","text/plain"]]}));
  s += time("entries", () => Array.from(new Headers({"content-type": "x"}).entries()));
  s += time("encode", () => new TextEncoder().encode("hello"));
  s += time("abort", () => new AbortSignal());
  s += time("asyncfn", () => { (async () => 1)(); });
  return new Response(s);
} }`})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := iso.Fetch(context.Background(), Request{URL: "http://x/"}, newMemHost())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(string(resp.Body))
}

func TestExpLoop(t *testing.T) {
	for _, coop := range []bool{false, true} {
		rt, err := NewRuntime(context.Background(), Config{CooperativeTimeouts: coop, CacheDir: "/tmp/coopcache"})
		if err != nil {
			t.Fatal(err)
		}
		iso, err := rt.New(context.Background(), Spec{Module: `
export default { fetch() {
  let t0 = Date.now(); let s = 0;
  for (let i = 0; i < 1e7; i++) s += i;
  let r = "loop1e7=" + (Date.now() - t0) + "ms ";
  t0 = Date.now(); const o = [];
  for (let i = 0; i < 1e5; i++) o.push({a: i, b: "x" + i});
  r += "alloc1e5=" + (Date.now() - t0) + "ms ";
  t0 = Date.now();
  for (let i = 0; i < 1e4; i++) JSON.parse('{"method":"GET","url":"http://agent/p?q=1","headers":[]}');
  r += "json1e4=" + (Date.now() - t0) + "ms ";
  return new Response(r);
} }`})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := iso.Fetch(context.Background(), Request{URL: "http://x/"}, newMemHost())
		if err != nil {
			t.Fatal(err)
		}
		t.Log(coop, string(resp.Body))
	}
}
