package isolate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBoundarySizeClass checks Config.MaxBodyBytes on each crossing of the
// isolate boundary: a request body going in, a response (text or binary)
// coming out, host-call arguments (console, state, fetch bodies,
// TextEncoder), host results (fetch responses, env services), and thrown
// error text, which is cut rather than refused.
func TestBoundarySizeClass(t *testing.T) {
	const limit = 64 << 10
	rt, err := NewRuntime(context.Background(), Config{MaxBodyBytes: limit,
		CacheDir: filepath.Join(os.TempDir(), "agentcloud-isolate-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	iso, err := rt.New(context.Background(), Spec{Module: `export default { async fetch(req, env) {
  const u = new URL(req.url), n = Number(u.searchParams.get("n") || 0), big = "A".repeat(n);
  switch (u.pathname) {
  case "/text": return new Response(big);
  case "/bytes": return new Response(new Uint8Array(n));
  case "/log": console.log(big); break;
  case "/put": await env.state.put("k", big); break;
  case "/fetch-body": await fetch("http://up/", {method: "POST", body: big}); break;
  case "/fetch": await fetch("http://up/"); break;
  case "/encode": new TextEncoder().encode(big); break;
  case "/invoke": await env.tools.call("x", {}); break;
  case "/throw": throw new Error(big);
  }
  return new Response("ok");
} }`})
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(context.Background())
	h := newMemHost()
	h.fetchFn = func(context.Context, Request) (Response, error) {
		return Response{Status: 200, Body: make([]byte, limit+1)}, nil
	}
	h.invokeFn = func(context.Context, string, string, []byte) ([]byte, error) {
		return []byte(`"` + strings.Repeat("x", limit) + `"`), nil
	}
	fetch := func(path string, body []byte) (Response, error) {
		return iso.Fetch(ctxTimeout(t, 10*time.Second), Request{Method: "POST", URL: "http://x" + path, Body: body}, h)
	}
	n := "?n=" + strconv.Itoa(limit+1)
	if _, err := fetch("/", make([]byte, limit+1)); !errors.Is(err, ErrRequestTooLarge) {
		t.Errorf("request body: %v, want ErrRequestTooLarge", err)
	}
	for _, p := range []string{"/text", "/bytes"} {
		_, err := fetch(p+n, nil)
		var se *SizeError
		if !errors.Is(err, ErrResponseTooLarge) || !errors.As(err, &se) || se.Limit != limit || se.Size <= limit {
			t.Errorf("%s: %v, want ErrResponseTooLarge with its size", p, err)
		}
	}
	for _, c := range []struct{ path, name, text string }{
		{"/log" + n, "RangeError", "host call argument"},
		{"/put" + n, "RangeError", "host call argument"},
		{"/fetch-body" + n, "RangeError", "host call argument"},
		{"/encode" + n, "RangeError", "host call argument"},
		{"/fetch", "TypeError", "response body is"},
		{"/invoke", "RangeError", "env.tools.call answered"},
	} {
		_, err := fetch(c.path, nil)
		var je *JSError
		if !errors.As(err, &je) || je.Name != c.name || !strings.Contains(je.Message, c.text) {
			t.Errorf("%s: %v, want a %s mentioning %q", c.path, err, c.name, c.text)
		}
	}
	_, err = fetch("/throw?n=1000000", nil)
	var je *JSError
	if !errors.As(err, &je) || len(je.Message) > maxErrorText {
		t.Errorf("a 1 MB exception: message of %d bytes, want at most %d", len(je.Message), maxErrorText)
	}
	// Under the limit everything passes, and the isolate survived it all.
	if resp, err := fetch("/text?n="+strconv.Itoa(limit-100), nil); err != nil || len(resp.Body) != limit-100 {
		t.Errorf("response under the limit: %d bytes, %v", len(resp.Body), err)
	}
}
