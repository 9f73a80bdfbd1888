package isolate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestWebAPIs(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"url basic", `(() => { const u = new URL("https://User:pw@Example.COM:443/a/./b/../c?x=1&y=a+b#frag"); return [u.protocol, u.username, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin, u.href].join("|") })()`,
			"https:|User|example.com||/a/c|?x=1&y=a+b|#frag|https://example.com|https://User:pw@example.com/a/c?x=1&y=a+b#frag"},
		{"url relative", `new URL("../d?q#h", "http://h:8080/a/b/c").href`, "http://h:8080/a/d?q#h"},
		{"url relative abs path", `new URL("/x", "http://h/a/b").href`, "http://h/x"},
		{"url scheme relative", `new URL("//other/p", "https://h/a").href`, "https://other/p"},
		{"url port", `new URL("http://h:81/").host`, "h:81"},
		{"url opaque", `(() => { const u = new URL("mailto:a@b.c"); return u.protocol + "|" + u.pathname + "|" + u.origin })()`, "mailto:|a@b.c|null"},
		{"url invalid", `(() => { try { new URL("nope"); return "no error" } catch (e) { return e.name } })()`, "TypeError"},
		{"url canParse", `URL.canParse("http://x") + "," + URL.canParse("::")`, "true,false"},
		{"url encode path", `new URL("http://h/a b/é").pathname`, "/a%20b/%C3%A9"},
		{"url searchParams live", `(() => { const u = new URL("http://h/p?a=1"); u.searchParams.append("b", "x y"); u.searchParams.set("a", "2"); return u.href })()`, "http://h/p?a=2&b=x+y"},
		{"url set search", `(() => { const u = new URL("http://h/p?a=1"); u.search = "?z=9"; return u.searchParams.get("z") + u.href })()`, "9http://h/p?z=9"},
		{"usp", `(() => { const p = new URLSearchParams("a=1&b=2&a=3&c=%20x+y"); return [p.get("a"), p.getAll("a").join(), p.has("b"), p.get("c"), p.size, [...p.keys()].join()].join("|") })()`,
			"1|1,3|true| x y|4|a,b,a,c"},
		{"usp object", `new URLSearchParams({q: "a&b", n: 1}).toString()`, "q=a%26b&n=1"},
		{"usp sort", `(() => { const p = new URLSearchParams("b=2&a=1&b=1"); p.sort(); return p.toString() })()`, "a=1&b=2&b=1"},
		{"headers", `(() => { const h = new Headers({"Content-Type": "text/plain"}); h.append("X-A", "1"); h.append("x-a", "2"); h.set("Y", " v "); return [h.get("content-type"), h.get("X-A"), h.has("y"), h.get("y"), [...h.keys()].join()].join("|") })()`,
			"text/plain|1, 2|true|v|content-type,x-a,y"},
		{"headers invalid", `(() => { try { new Headers({"bad name": "x"}); return "ok" } catch (e) { return e.name } })()`, "TypeError"},
		{"headers set-cookie", `(() => { const h = new Headers(); h.append("Set-Cookie", "a=1"); h.append("Set-Cookie", "b=2"); return JSON.stringify(h.getSetCookie()) })()`, `["a=1","b=2"]`},
		{"response text", `new Response("hi", {status: 201, headers: {"x": "y"}}).text().then(t => t)`, "hi"},
		{"response fields", `(() => { const r = new Response("x", {status: 404, statusText: "NF"}); return [r.status, r.ok, r.statusText, r.headers.get("content-type")].join("|") })()`, "404|false|NF|text/plain;charset=UTF-8"},
		{"response json static", `(async () => { const r = Response.json({a: [1, 2]}); return r.headers.get("content-type") + " " + JSON.stringify(await r.json()) })()`, `application/json {"a":[1,2]}`},
		{"response arrayBuffer", `(async () => { const b = await new Response("héllo").arrayBuffer(); return b.byteLength })()`, "6"},
		{"response bytes body", `new Response(new Uint8Array([104, 105])).text()`, "hi"},
		{"response body used", `(async () => { const r = new Response("x"); await r.text(); try { await r.text(); return "reused" } catch (e) { return e.name } })()`, "TypeError"},
		{"response clone", `(async () => { const r = new Response("x"); const c = r.clone(); return (await r.text()) + (await c.text()) })()`, "xx"},
		{"response redirect", `(() => { const r = Response.redirect("http://h/x", 301); return r.status + " " + r.headers.get("location") })()`, "301 http://h/x"},
		{"request", `(async () => { const r = new Request("http://h/p", {method: "post", headers: {"X": "1"}, body: JSON.stringify({k: 1})}); return [r.method, r.url, r.headers.get("x"), (await r.json()).k].join("|") })()`, "POST|http://h/p|1|1"},
		{"request get body", `(() => { try { new Request("http://h/", {body: "x"}); return "ok" } catch (e) { return e.name } })()`, "TypeError"},
		{"textencoder", `Array.from(new TextEncoder().encode("é€")).join()`, "195,169,226,130,172"},
		{"textdecoder", `new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 104, 0xc3, 0xa9, 0xff]))`, "hé\uFFFD"},
		{"textdecoder fatal", `(() => { try { new TextDecoder("utf-8", {fatal: true}).decode(new Uint8Array([0xff])); return "ok" } catch (e) { return "threw" } })()`, "threw"},
		{"textdecoder subarray", `new TextDecoder().decode(new TextEncoder().encode("abcdef").subarray(2, 4))`, "cd"},
		{"getRandomValues", `(() => { const a = new Uint32Array(8); crypto.getRandomValues(a); return a.some(x => x !== 0) })()`, "true"},
		{"randomUUID", `/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID())`, "true"},
		{"digest", `crypto.subtle.digest("SHA-256", new TextEncoder().encode("abc")).then(b => Array.from(new Uint8Array(b), x => x.toString(16).padStart(2, "0")).join(""))`,
			"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"math random", `(() => { const xs = Array.from({length: 100}, Math.random); return xs.every(x => x >= 0 && x < 1) && new Set(xs).size === 100 })()`, "true"},
		{"setTimeout order", `new Promise(r => { const out = []; setTimeout(() => out.push("b"), 20); setTimeout(() => out.push("a"), 5); const id = setTimeout(() => out.push("never"), 1); clearTimeout(id); setTimeout(() => r(out.join("")), 30); })`, "ab"},
		{"setTimeout args", `new Promise(r => setTimeout((a, b) => r(a + b), 0, "x", "y"))`, "xy"},
		{"setInterval", `new Promise(r => { let n = 0; const id = setInterval(() => { if (++n === 3) { clearInterval(id); r(String(n)); } }, 1); })`, "3"},
		{"queueMicrotask", `new Promise(r => queueMicrotask(() => r("mt")))`, "mt"},
		{"async await", `(async () => { const f = async x => x * 2; let s = 0; for (const x of [1, 2, 3]) s += await f(x); return s })()`, "12"},
		{"structuredClone", `JSON.stringify(structuredClone({a: [1, {b: 2}]}))`, `{"a":[1,{"b":2}]}`},
		{"atob btoa", `atob(btoa("hello"))`, "hello"},
		{"abort controller", `(() => { const c = new AbortController(); let seen = false; c.signal.addEventListener("abort", () => seen = true); c.abort(); return c.signal.aborted && seen })()`, "true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := evalJS(t, c.expr); got != c.want {
				t.Fatalf("%s\n got %q\nwant %q", c.expr, got, c.want)
			}
		})
	}
}

func TestRequestResponseRoundTrip(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req, env, ctx) {
		const body = await req.json();
		return Response.json({method: req.method, url: req.url, ua: req.headers.get("user-agent"), got: body}, {status: 202, headers: {"X-Reply": "yes"}});
	} }`)
	resp, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "POST", URL: "https://agent.example/run?x=1",
		Headers: [][2]string{{"User-Agent", "test"}, {"Content-Type", "application/json"}}, Body: []byte(`{"n":1}`)}, newMemHost())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 202 || resp.Header("x-reply") != "yes" || resp.Header("Content-Type") != "application/json" || resp.StatusText != "Accepted" {
		t.Fatalf("resp = %+v", resp)
	}
	var got map[string]any
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	if got["method"] != "POST" || got["url"] != "https://agent.example/run?x=1" || got["ua"] != "test" || got["got"].(map[string]any)["n"] != 1.0 {
		t.Fatalf("body = %s", resp.Body)
	}
}

func TestBinaryBody(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req) {
		const b = new Uint8Array(await req.arrayBuffer());
		return new Response(b.map(x => 255 - x));
	} }`)
	in := []byte{0, 1, 2, 250, 255}
	resp, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "PUT", URL: "http://x/", Body: in}, newMemHost())
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != string([]byte{255, 254, 253, 5, 0}) {
		t.Fatalf("body = %v", resp.Body)
	}
}

func TestConsole(t *testing.T) {
	iso := newIsolate(t, `export default { fetch() {
		console.log("a", 1, {b: 2}); console.warn("w"); console.error(new Error("e")); console.debug("d"); console.info("i");
		return new Response("ok");
	} }`)
	h := newMemHost()
	get(t, iso, h, "http://x/")
	got := strings.Join(h.logs, "\n")
	for _, want := range []string{`log: a 1 {"b":2}`, "warn: w", "error: Error: e", "debug: d", "info: i"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs lack %q:\n%s", want, got)
		}
	}
}

func TestState(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req, env) {
		const s = env.state;
		await s.put("user:1", {name: "ann"});
		await s.put("user:2", {name: "bob"});
		await s.put("other", 7);
		const one = await s.get("user:1");
		const missing = await s.get("nope");
		const list = await s.list({prefix: "user:"});
		const limited = await s.list({prefix: "user:", limit: 1});
		await s.delete("user:2");
		const after = await s.list({prefix: "user:"});
		await s.setAlarm(Date.UTC(2030, 0, 1));
		const alarm = await s.getAlarm();
		await s.deleteAlarm();
		const noAlarm = await s.getAlarm();
		let badPut = "ok";
		try { await s.put("f", () => 1) } catch (e) { badPut = e.name }
		return Response.json({one, missing: missing === undefined, keys: [...list.keys()], limited: limited.size,
			after: [...after.entries()], alarm, noAlarm, badPut});
	} }`)
	h := newMemHost()
	got := get(t, iso, h, "http://x/")
	want := `{"one":{"name":"ann"},"missing":true,"keys":["user:1","user:2"],"limited":1,"after":[["user:1",{"name":"ann"}]],"alarm":1893456000000,"noAlarm":null,"badPut":"DataCloneError"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if string(h.state["other"]) != "7" {
		t.Fatalf("state = %q", h.state)
	}
}

func TestAlarm(t *testing.T) {
	iso := newIsolate(t, `export default {
		async fetch(req, env) { return new Response("f") },
		async alarm(env) { await env.state.put("fired", (await env.state.get("fired") || 0) + 1); await env.state.setAlarm(Date.now() + 1000); },
	}`)
	h := newMemHost()
	for i := 0; i < 2; i++ {
		if err := iso.Alarm(ctxTimeout(t, 5*time.Second), h); err != nil {
			t.Fatal(err)
		}
	}
	if string(h.state["fired"]) != "2" || time.Until(h.alarm) <= 0 {
		t.Fatalf("state %q alarm %v", h.state, h.alarm)
	}
}

func TestOutboundFetch(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req) {
		const r = await fetch("https://api.example/v1?q=1", {method: "POST", headers: {"Authorization": "Bearer x"}, body: "ping"});
		const denied = await fetch("https://blocked.example/").then(() => "allowed", e => e.name + ": " + e.message);
		return new Response([r.status, r.ok, r.headers.get("x-up"), await r.text(), r.url, denied].join("|"));
	} }`)
	h := newMemHost()
	h.fetchFn = func(ctx context.Context, req Request) (Response, error) {
		if strings.Contains(req.URL, "blocked") {
			return Response{}, context.Canceled // any error
		}
		if req.Method != "POST" || req.Header("authorization") != "Bearer x" || string(req.Body) != "ping" {
			t.Errorf("upstream got %+v", req)
		}
		return Response{Status: 201, Headers: [][2]string{{"X-Up", "1"}}, Body: []byte("pong")}, nil
	}
	got := get(t, iso, h, "http://x/")
	if !strings.HasPrefix(got, "201|true|1|pong|https://api.example/v1?q=1|TypeError: fetch failed") {
		t.Fatalf("got %q", got)
	}
}

func TestWaitUntilAndTimersEndWithCall(t *testing.T) {
	iso := newIsolate(t, `
let done = 0;
export default { async fetch(req, env, ctx) {
	if (req.url.endsWith("/read")) return new Response(String(done));
	ctx.waitUntil(new Promise(r => setTimeout(() => { done++; r(); }, 10)));
	setTimeout(() => { done += 100; }, 60000); // dropped when the call ends
	return new Response("queued");
} }`)
	h := newMemHost()
	get(t, iso, h, "http://x/")
	if got := get(t, iso, h, "http://x/read"); got != "1" {
		t.Fatalf("done = %s, want 1", got)
	}
}

func TestImports(t *testing.T) {
	iso, err := testRuntime(t).New(context.Background(), Spec{
		Module:  `import { greet } from "./lib.js"; export default { fetch() { return new Response(greet("x")) } }`,
		Modules: map[string]string{"lib.js": `export const greet = n => "hi " + n;`},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(context.Background())
	if got := get(t, iso, newMemHost(), "http://x/"); got != "hi x" {
		t.Fatalf("got %q", got)
	}
}
