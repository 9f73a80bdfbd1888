package session

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

const cloneJS = `
let key = null, sig = "", local = null;
const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
const describe = (v) => ({
  map: v.map instanceof Map && v.map.get("k") instanceof Set && [...v.map.get("k")].join() === "1,2" && v.map.get(1).getTime() === 5,
  bytes: v.bytes instanceof Uint8Array && Array.from(v.bytes).join() === "0,255,7",
  cycle: v.cycle.me === v.cycle,
  file: v.file instanceof File && v.file.name === "f.bin" && v.file.type === "application/x" && v.file.size === 3 && v.file.lastModified === 42,
  misc: v.misc.u === undefined && "u" in v.misc && Object.is(v.misc.z, -0) && String(v.misc.big) === "1180591620717411303424" && v.misc.e instanceof RangeError,
});
export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/put") {
      const cyc = {n: 1}; cyc.me = cyc;
      await env.state.put({
        plain: {a: 1, b: [true, "x"]},
        map: new Map([["k", new Set([1, 2])], [1, new Date(5)]]),
        bytes: new Uint8Array([0, 255, 7]),
        cycle: cyc,
        file: new File([new Uint8Array([1, 2, 3])], "f.bin", {type: "application/x", lastModified: 42}),
        misc: {u: undefined, z: -0, big: 2n ** 70n, e: new RangeError("r")},
      });
      local = structuredClone({map: await env.state.get("map"), bytes: await env.state.get("bytes"), cycle: cyc, misc: await env.state.get("misc"), file: await env.state.get("file")});
      key = await crypto.subtle.importKey("raw", new TextEncoder().encode("Jefe"), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
      sig = hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode("what do ya want for nothing?")));
      return new Response("ok");
    }
    if (path === "/ext") return Response.json(await env.state.get("ext"));
    const stored = {};
    for (const k of ["map", "bytes", "cycle", "misc", "file"]) stored[k] = await env.state.get(k);
    const listed = Object.fromEntries(await env.state.list());
    return Response.json({
      stored: describe(stored), listed: describe(listed), heap: describe(local), plain: await env.state.get("plain"),
      key: key !== null && hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode("what do ya want for nothing?"))) === sig,
      sig,
    });
  },
};`

// TestStructuredCloneStateAcrossHibernation: structured-clone values in
// env.state (a File among them), structured clones and a CryptoKey held in
// globals read back the same after the session hibernates and after the
// node restarts;
// plain JSON values are stored as their JSON text (what the state routes
// read), and JSON written from outside reads back unchanged.
func TestStructuredCloneStateAcrossHibernation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := openManager(t, dir)
	deploy(t, m, `{"name":"clone","entry":"agent.js","limits":{"idle_seconds":3600}}`, cloneJS)
	if got := mustCall(t, m, "clone", "s1", "/put"); got != "ok" {
		t.Fatalf("/put: %s", got)
	}
	const want = `{"stored":{"map":true,"bytes":true,"cycle":true,"file":true,"misc":true},"listed":{"map":true,"bytes":true,"cycle":true,"file":true,"misc":true},` +
		`"heap":{"map":true,"bytes":true,"cycle":true,"file":true,"misc":true},"plain":{"a":1,"b":[true,"x"]},"key":true,` +
		`"sig":"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"}`
	check := func(when string, m *Manager) {
		t.Helper()
		if got := mustCall(t, m, "clone", "s1", "/"); got != want {
			t.Fatalf("%s:\n got %s\nwant %s", when, got, want)
		}
	}
	check("live", m)
	if err := m.Hibernate(ctx, "clone", "s1"); err != nil {
		t.Fatal(err)
	}
	check("after hibernation", m)

	plain, ok, err := m.StateGet(ctx, "clone", "s1", "plain")
	if err != nil || !ok || string(plain) != `{"a":1,"b":[true,"x"]}` {
		t.Fatalf("plain value stored as %s %v %v, want its JSON text", plain, ok, err)
	}
	env, ok, err := m.StateGet(ctx, "clone", "s1", "map")
	if err != nil || !ok || !json.Valid(env) || !strings.HasPrefix(string(env), `{"__ac_sc":1,`) {
		t.Fatalf("map stored as %s %v %v, want a JSON envelope", env, ok, err)
	}
	if err := m.StatePut(ctx, "clone", "s1", "ext", json.RawMessage(`{"x":[1,2],"y":{"z":null}}`)); err != nil {
		t.Fatal(err)
	}
	if got := mustCall(t, m, "clone", "s1", "/ext"); got != `{"x":[1,2],"y":{"z":null}}` {
		t.Fatalf("/ext: %s", got)
	}

	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_ = m.cfg.Store.Close()
	m2 := openManager(t, dir)
	check("after restart", m2)
}
