package sessionhttp_test

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
)

// marshalJS echoes what reached it and answers with repeated, mixed-case
// and hop-by-hop headers.
const marshalJS = `export default { async fetch(request) {
	const body = await request.text();
	const h = new Headers();
	h.append("set-cookie", "a=1"); h.append("set-cookie", "b=2");
	h.append("x-multi", "one"); h.append("X-Multi", "two");
	h.set("keep-alive", "timeout=5"); h.set("transfer-encoding", "chunked"); h.set("upgrade", "h2c");
	return new Response(JSON.stringify({method: request.method, url: request.url, body, multi: request.headers.get("x-in")}), {status: 201, headers: h});
} }`

// TestTrafficMarshallingClass: a request and its response cross into the
// session and back unchanged by the warm path's shortcuts: bodies (none,
// empty, sized, chunked) arrive whole; repeated request headers arrive
// joined; the URL keeps path and query as sent (an escaped ?, #, / or %
// in the path stays escaped); repeated response headers
// (set-cookie, any other) come back as separate values under canonical
// names; hop-by-hop response headers are dropped.
func TestTrafficMarshallingClass(t *testing.T) {
	t.Parallel() // its own daemon parts and agent
	e := newEnv(t)
	if resp, body := e.deploy(t, "", agentFiles("marsh", marshalJS)); resp.StatusCode != 201 {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct {
		method string
		body   io.Reader
		want   string
	}{
		{"GET", nil, ""},
		{"DELETE", nil, ""},
		{"POST", strings.NewReader(""), ""},
		{"POST", strings.NewReader("hello body"), "hello body"},
		{"PUT", io.MultiReader(strings.NewReader("chun"), strings.NewReader("ked")), "chunked"}, // no length: chunked
	} {
		resp, body := e.do(t, "", c.method, "/agents/marsh/sessions/s/p/q%3Fx%23y%2Fz/%25?a=1&b=%2F", c.body, map[string]string{"X-In": "x"})
		var got struct{ Method, URL, Body, Multi string }
		if resp.StatusCode != 201 || json.Unmarshal(body, &got) != nil {
			t.Fatalf("%s: %d %s", c.method, resp.StatusCode, body)
		}
		if got.Method != c.method || got.Body != c.want || !strings.HasSuffix(got.URL, "/p/q%3Fx%23y%2Fz/%25?a=1&b=%2F") || got.Multi != "x" {
			t.Errorf("%s reached the agent as %+v", c.method, got)
		}
		if v := resp.Header.Values("Set-Cookie"); !slices.Equal(v, []string{"a=1", "b=2"}) {
			t.Errorf("%s: Set-Cookie %q", c.method, v)
		}
		if v := resp.Header.Values("X-Multi"); !slices.Equal(v, []string{"one, two"}) && !slices.Equal(v, []string{"one", "two"}) {
			t.Errorf("%s: X-Multi %q", c.method, v)
		}
		for _, h := range []string{"Keep-Alive", "Upgrade"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("%s: hop-by-hop %s came back: %q", c.method, h, v)
			}
		}
		if slices.Contains(resp.TransferEncoding, "chunked") && resp.ContentLength >= 0 {
			t.Errorf("%s: transfer encoding %v with length %d", c.method, resp.TransferEncoding, resp.ContentLength)
		}
	}
}
