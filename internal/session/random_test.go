package session

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// TestRandomPerSessionClass checks that Math.random gives every activation
// fresh host randomness: new sessions (restored from the version's
// template, which drew from the generator at module top level), the same
// sessions after hibernation, and a session restored twice from one
// snapshot (its isolate dropped by a memory overrun in between).
func TestRandomPerSessionClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"rnd","entry":"agent.js","limits":{"memory_mib":16,"idle_seconds":3600}}`, `
const bootId = Math.random();
export default { fetch(request) {
  if (new URL(request.url).pathname === "/bomb") { const a = []; for (;;) a.push(new Array(1000000).fill(1)); }
  return new Response(String(Math.random()));
} };`)
	seen := map[string]string{}
	first := func(what, id string) {
		t.Helper()
		v := mustCall(t, m, "rnd", id, "/")
		if prev, dup := seen[v]; dup {
			t.Fatalf("%s: Math.random() %s repeats %s", what, v, prev)
		}
		seen[v] = what
	}
	const n = 200
	for i := range n {
		first("new session", fmt.Sprintf("s%d", i))
	}
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		if err := m.Hibernate(context.Background(), "rnd", id); err != nil {
			t.Fatal(err)
		}
		first("restored session "+id, id)
	}
	// One snapshot restored twice: hibernate, draw, crash, draw again.
	if err := m.Hibernate(context.Background(), "rnd", "s0"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		first(fmt.Sprintf("restore %d of one snapshot", i), "s0")
		if _, _, err := call(t, m, "rnd", "s0", "GET", "/bomb", ""); !api.IsKind(err, api.KindSessionMemoryExceeded) {
			t.Fatalf("bomb: %v", err)
		}
	}
}
