package isolate

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// driverModule answers by path: synchronously, after an await, with
// waitUntil work, with something that is not a Response, by throwing, and
// through a foreign thenable. n counts the calls, so a response computed
// twice or a lost waitUntil shows.
const driverModule = `
let n = 0;
export default {
	async fetch(req, env, ctx) {
		const u = new URL(req.url);
		n++;
		if (u.pathname === "/sync") return new Response("sync " + n);
		if (u.pathname === "/wait") { ctx.waitUntil(new Promise((r) => setTimeout(r, 1)).then(() => { n += 100; })); return new Response("wait " + n); }
		if (u.pathname === "/bad") return "not a response";
		if (u.pathname === "/throw") throw new Error("boom");
		await null;
		return new Response("async " + n, { status: 201 });
	},
};`

// TestDriverSettlesClass checks the driver protocol in which Go settles an
// asynchronous handler's promise and passes its value back to be answered
// (prelude.js fetch, Isolate.respondTo), on an isolate running the current
// prelude and on one restored from an image taken with the driver before
// it (testdata/olddriver.snap: driverModule's isolate after one request,
// snapshotted by the commit before this protocol), which must keep
// answering through its own protocol. Both must give the same answers,
// errors included, and a request whose method starts with a control byte
// (the marker of the driver's own calls) is refused before it reaches the
// guest.
func TestDriverSettlesClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := ctxTimeout(t, 20*time.Second)
	fresh := newIsolate(t, driverModule)
	if _, err := fresh.Fetch(ctx, Request{Method: "GET", URL: "http://a/warm"}, newMemHost()); err != nil {
		t.Fatal(err)
	}
	isos := map[string]*Isolate{"current": fresh}
	old, err := os.ReadFile("testdata/olddriver.snap")
	if err != nil {
		t.Fatal(err)
	}
	restored, err := rt.Restore(ctx, Spec{SessionID: "s1", Agent: "a1", Module: driverModule}, old, nil)
	if errors.Is(err, ErrBadSnapshot) && strings.Contains(err.Error(), "quickjs.wasm") {
		t.Skipf("olddriver.snap was made with another quickjs.wasm: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restored.Close(ctx) })
	isos["old driver"] = restored
	wantKind := map[string]driverKind{"current": driverSettles, "old driver": driverResponds}

	for name, iso := range isos {
		h := newMemHost()
		get := func(path string) (Response, error) {
			return iso.Fetch(ctx, Request{Method: "GET", URL: "http://a" + path}, h)
		}
		// The warm-up request counted 1.
		for _, c := range []struct {
			path   string
			status int
			body   string
		}{
			{"/sync", 200, "sync 2"},
			{"/async", 201, "async 3"},
			{"/wait", 200, "wait 4"},
			{"/async", 201, "async 105"}, // the waitUntil work ran before the call ended
			{"/async", 201, "async 106"},
		} {
			resp, err := get(c.path)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, c.path, err)
			}
			if resp.Status != c.status || string(resp.Body) != c.body {
				t.Fatalf("%s: %s: %d %q, want %d %q", name, c.path, resp.Status, resp.Body, c.status, c.body)
			}
		}
		if _, err := get("/bad"); err == nil || !strings.Contains(err.Error(), "not a Response") {
			t.Errorf("%s: a handler resolving to a string: %v, want the not-a-Response TypeError", name, err)
		}
		if _, err := get("/throw"); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("%s: a throwing handler: %v", name, err)
		}
		for _, m := range []string{"\x02", "\x01GET", "\x02GET"} {
			if _, err := iso.Fetch(ctx, Request{Method: m, URL: "http://a/sync"}, h); !errors.Is(err, errMethod) {
				t.Errorf("%s: method %q: %v, want errMethod", name, m, err)
			}
		}
		// Nothing above left the isolate unusable or counted twice.
		if resp, err := get("/sync"); err != nil || string(resp.Body) != "sync 109" {
			t.Errorf("%s: after the errors: %q, %v", name, resp.Body, err)
		}
		if iso.driver != wantKind[name] {
			t.Errorf("%s: driver probed as %d, want %d", name, iso.driver, wantKind[name])
		}
	}
}
