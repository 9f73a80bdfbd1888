package isolate

import (
	"context"
	"testing"
)

// TestPreludeLibsClass: webcrypto.js, clone.js, streams.js and webapi.js are compiled into the
// template when the agent's source names them (so a session's snapshot
// delta stays small after it uses them), and on first use otherwise; both
// ways behave the same.
func TestPreludeLibsClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	const body = `export default { async fetch(req, env) {
		const p = new URL(req.url).pathname, c = crypto[SUB];
		if (p === "/crypto") { const k = await c.importKey("raw", new Uint8Array(8), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]); return new Response(String((await c.sign("HMAC", k, new Uint8Array(1))).byteLength)); }
		if (p === "/stream") return new Response(new globalThis[RS]({ start(c) { c.enqueue(new Uint8Array([52, 50])); c.close(); } }));
		if (p === "/form") { const f = new globalThis[FD](); f.append("a", "42"); const r = new Response(f); return new Response((await r[FDM]()).get("a")); }
		if (p === "/urlpattern") return new Response(new globalThis[UP]({ pathname: "/:n" }).exec("http://x/42").pathname.groups.n);
		if (p === "/cache") { await globalThis[CA].default.put("http://x/c", new Response("42")); return new Response(await (await globalThis[CA].default.match("http://x/c")).text()); }
		if (p === "/clone") { const m = globalThis[SC](new globalThis[MAP]([[1, 2]])); return new Response(String(m.get(1))); }
		return new Response("ok");
	} }`
	cases := []struct {
		name, prefix string
		hinted       bool
	}{
		{"named", `const SUB = "subtle", SC = "structuredClone", MAP = "Map", RS = "ReadableStream", FD = "FormData", FDM = "formData", UP = "URLPattern", CA = "caches"; new Map();`, true},
		{"hidden", `const SUB = "sub" + "tle", SC = "structured" + "Clone", MAP = "M" + "ap", RS = "Readable" + "Str" + "eam", FD = "Form" + "Data", FDM = "form" + "Data", UP = "URL" + "Pattern", CA = "cac" + "hes";`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := Spec{Agent: "libs-" + c.name, Module: c.prefix + body}
			tmpl, err := rt.Template(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range []struct{ path, want string }{{"/crypto", "32"}, {"/clone", "2"}, {"/stream", "42"}, {"/form", "42"}, {"/urlpattern", "42"}, {"/cache", "42"}} {
				iso, err := rt.Restore(ctx, spec, nil, tmpl)
				if err != nil {
					t.Fatal(err)
				}
				if got := get(t, iso, newMemHost(), "http://x"+call.path); got != call.want {
					t.Fatalf("%s = %q, want %q", call.path, got, call.want)
				}
				delta, err := iso.Snapshot(tmpl)
				if err != nil {
					t.Fatal(err)
				}
				_ = iso.Close(ctx)
				t.Logf("%s %s: snapshot delta %d bytes", c.name, call.path, len(delta))
				if c.hinted && len(delta) > 12<<10 {
					t.Errorf("%s: delta %d bytes: the library was not in the template", call.path, len(delta))
				}
				if !c.hinted && len(delta) < 12<<10 {
					t.Errorf("%s: delta %d bytes: the library was compiled without a hint", call.path, len(delta))
				}
			}
		})
	}
}
