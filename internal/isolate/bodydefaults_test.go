package isolate

import (
	"strings"
	"testing"
	"time"
)

// TestBodyDefaultsClass checks the class of bugs that defaults kept on the
// Request and Response prototypes (bodyProto in prelude.js) could bring:
// one request's or response's state showing through in a later one of the
// same isolate, and the one-argument Response constructor's fast path
// differing from the general one.
func TestBodyDefaultsClass(t *testing.T) {
	iso := newIsolate(t, `
let last = null;
export default { async fetch(req) {
	const u = new URL(req.url);
	if (u.pathname === "/dirty") {
		// Consume and mutate everything a later request or response
		// could inherit.
		await req.text();
		req.headers.set("x-leak", "1");
		req.redirect = "manual";
		const r = new Response("dirty", { status: 201, statusText: "Made", headers: { "x-leak": "1" } });
		r.url = "http://leak/"; r.redirected = true; r.type = "error";
		await r.clone().text();
		last = r;
		return r;
	}
	const fresh = new Response("fresh");
	const general = new Response("fresh", {});
	const fields = (r) => [r.status, r.statusText, r.ok, r.type, r.url, r.redirected, r.bodyUsed, r.webSocket,
		JSON.stringify([...r.headers])].join("|");
	const out = {
		method: req.method,
		bodyUsed: req.bodyUsed,
		body: await req.text(),
		leakHeader: req.headers.get("x-leak"),
		redirect: req.redirect,
		fresh: fields(fresh),
		general: fields(general),
		same: fields(fresh) === fields(general),
		freshText: await fresh.text(),
		lastUsed: last === null ? null : last.bodyUsed,
		nullBody: fields(new Response()) + "|" + (new Response().body === null),
	};
	return Response.json(out);
} }`)
	h := newMemHost()
	ctx := ctxTimeout(t, 10*time.Second)
	fetch := func(method, url, body string) string {
		t.Helper()
		resp, err := iso.Fetch(ctx, Request{Method: method, URL: url, Body: []byte(body)}, h)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return string(resp.Body)
	}
	clean := fetch("GET", "http://a/clean", "")
	for _, want := range []string{
		`"method":"GET"`, `"bodyUsed":false`, `"body":""`, `"leakHeader":null`, `"redirect":"follow"`,
		`"fresh":"200||true|default||false|false||[[\"content-type\",\"text/plain;charset=UTF-8\"]]"`,
		`"same":true`, `"freshText":"fresh"`,
		`"nullBody":"200||true|default||false|false||[]|true"`,
	} {
		if !strings.Contains(clean, want) {
			t.Fatalf("clean request: want %s in %s", want, clean)
		}
	}
	if got := fetch("POST", "http://a/dirty", "secret body"); got != "dirty" {
		t.Fatalf("dirty request answered %q", got)
	}
	after := fetch("GET", "http://a/after", "")
	for k, want := range map[string]string{"method": `"method":"GET"`, "bodyUsed": `"bodyUsed":false`, "body": `"body":""`,
		"header": `"leakHeader":null`, "redirect": `"redirect":"follow"`, "last": `"lastUsed":false`, "same": `"same":true`} {
		if !strings.Contains(after, want) {
			t.Errorf("after a dirty request, %s: want %s in %s", k, want, after)
		}
	}
	if strings.Contains(after, "secret body") || strings.Contains(after, "leak") && !strings.Contains(after, `"leakHeader":null`) {
		t.Errorf("the dirty request's state leaked: %s", after)
	}
	// A request with a body after one without reads its own body.
	if got := fetch("PUT", "http://a/after", "second"); !strings.Contains(got, `"body":"second"`) {
		t.Errorf("body: %s", got)
	}
}
