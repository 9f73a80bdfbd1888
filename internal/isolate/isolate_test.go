package isolate

import (
	"testing"
)

func TestHello(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req, env) { return new Response("hello " + env.session.id + " " + req.url) } }`)
	if got := get(t, iso, newMemHost(), "http://x/y"); got != "hello s1 http://x/y" {
		t.Fatalf("got %q", got)
	}
}
