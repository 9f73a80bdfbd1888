package isolate

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// oldURLModule is the module of testdata/oldurl.snap: an isolate of it,
// after one request, snapshotted by the commit before URL parsed through
// the host, when url.js was a parser in JavaScript.
const oldURLModule = `let n = 0;
export default { async fetch(req) {
	n++;
	const u = new URL(req.url);
	const r = new URL("../x/y?a=1&b=2#h", u);
	r.searchParams.append("c", "d e");
	r.hash = "frag";
	r.pathname = "/p/q";
	r.port = "8080";
	const before = r.searchParams.get("a");
	r.search = "?z=1";
	const sp = new URLSearchParams("k=w&k=v&j=1");
	sp.sort();
	const req2 = new Request(r);
	const enc = new URL("http://h/a b/\u00e9?\u00e9#\u00e9").href;
	return Response.json({n, enc, href: u.href, q: u.searchParams.get("q"), rel: r.href, before, sp: r.searchParams.toString(), sorted: sp.toString(),
		req: req2.url, origin: r.origin, host: r.host, canParse: URL.canParse("nope"), json: JSON.stringify({r})});
} }`

// TestURLOldPreludeClass restores testdata/oldurl.snap, a session
// hibernated with the prelude whose URL parsed in JavaScript, and checks
// that it keeps running (its heap holds its own URL, which calls no host
// op that was removed) and answers as a new isolate of the same module
// does, its state (the request count) carried over.
func TestURLOldPreludeClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := ctxTimeout(t, 20*time.Second)
	old, err := os.ReadFile("testdata/oldurl.snap")
	if err != nil {
		t.Fatal(err)
	}
	restored, err := rt.Restore(ctx, Spec{SessionID: "s1", Agent: "a1", Module: oldURLModule}, old, nil)
	if errors.Is(err, ErrBadSnapshot) && strings.Contains(err.Error(), "quickjs.wasm") {
		t.Skipf("oldurl.snap was made with another quickjs.wasm: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restored.Close(ctx) })
	fresh := newIsolate(t, oldURLModule)
	answer := func(iso *Isolate) map[string]any {
		resp, err := iso.Fetch(ctx, Request{Method: "GET", URL: "http://a/p/r?q=1"}, newMemHost())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(resp.Body, &m); err != nil {
			t.Fatalf("%v: %s", err, resp.Body)
		}
		return m
	}
	got, want := answer(restored), answer(fresh)
	if got["n"] != 2.0 || want["n"] != 1.0 {
		t.Fatalf("request counts: restored %v (want 2), fresh %v (want 1)", got["n"], want["n"])
	}
	delete(got, "n")
	delete(want, "n")
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("the old heap answers\n  %s\nthe new prelude\n  %s", g, w)
	}
	if want["rel"] != "http://a:8080/p/q?z=1#frag" || want["sp"] != "z=1" || want["sorted"] != "j=1&k=w&k=v" {
		t.Fatalf("unexpected answer %s", w)
	}
}
