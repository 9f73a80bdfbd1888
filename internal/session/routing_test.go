package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/store"
)

// The limits leave room for a loaded machine: these tests are about routing.
const routedManifest = `{"name":"routed","entry":"agent.js","limits":{"idle_seconds":3600,"cpu_ms":10000,"wall_ms":20000}}`

// versionJS answers with its name; /throw throws, /fail answers 500.
func versionJS(name string) string {
	return `export default { async fetch(request) {
  const p = new URL(request.url).pathname;
  if (p === "/throw") throw new Error("broken ` + name + `");
  if (p === "/fail") return new Response("no", {status: 500});
  return new Response("` + name + `");
}};`
}

func addVersion(t testing.TB, m *Manager, manifest, code string) string {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest), "agent.js": []byte(code)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.AddVersion(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return v.Digest
}

func setRouting(t testing.TB, m *Manager, agent string, r Routing) {
	t.Helper()
	st, err := m.ReadRouting(context.Background(), agent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetRouting(context.Background(), agent, r, st.Revision, ""); err != nil {
		t.Fatal(err)
	}
}

// TestRoutingStickyClass: sessions are split between the stable and the
// canary version by their hash, concurrently; each keeps its version while
// that version serves (a raised share moves nobody off the stable one),
// and moves at its next request when it stops serving (completion,
// rollback), on the same node or as recorded in its meta after a restart.
func TestRoutingStickyClass(t *testing.T) {
	dir := t.TempDir()
	m := openManager(t, dir)
	v1 := deploy(t, m, routedManifest, versionJS("v1")).Digest
	v2 := addVersion(t, m, routedManifest, versionJS("v2"))
	name := map[string]string{v1: "v1", v2: "v2"}
	setRouting(t, m, "routed", Routing{Stable: v1, Canary: v2, Percent: 30})

	const n = 60
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%d", i)
	}
	got := make([]string, n)
	callAll := func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range ids {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				got[i] = mustCall(t, m, "routed", ids[i], "/")
			}()
		}
		wg.Wait()
	}
	callAll()
	canary := 0
	for i, id := range ids {
		want := name[Routing{Stable: v1, Canary: v2, Percent: 30}.Pick("routed", id)]
		if got[i] != want {
			t.Fatalf("session %s served by %s, want %s", id, got[i], want)
		}
		if got[i] == "v2" {
			canary++
		}
	}
	if canary == 0 || canary == n {
		t.Fatalf("canary at 30%% got %d of %d sessions", canary, n)
	}
	first := append([]string(nil), got...)

	// Raising the share keeps every existing session where it is.
	setRouting(t, m, "routed", Routing{Stable: v1, Canary: v2, Percent: 90})
	callAll()
	for i := range ids {
		if got[i] != first[i] {
			t.Fatalf("session %s moved from %s to %s while both serve", ids[i], first[i], got[i])
		}
	}
	// A new session takes the new share.
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("new%d", i)
		want := name[Routing{Stable: v1, Canary: v2, Percent: 90}.Pick("routed", id)]
		if g := mustCall(t, m, "routed", id, "/"); g != want {
			t.Fatalf("new session %s on %s, want %s", id, g, want)
		}
	}

	// Rollback: every session is on v1 at its next request.
	setRouting(t, m, "routed", Routing{Stable: v1})
	callAll()
	for i := range ids {
		if got[i] != "v1" {
			t.Fatalf("after rollback session %s on %s", ids[i], got[i])
		}
	}
	// Completion: every session is on v2, also after hibernation.
	setRouting(t, m, "routed", Routing{Stable: v2})
	for _, id := range ids[:5] {
		if err := m.Hibernate(context.Background(), "routed", id); err != nil {
			t.Fatal(err)
		}
	}
	callAll()
	for i := range ids {
		if got[i] != "v2" {
			t.Fatalf("after completion session %s on %s", ids[i], got[i])
		}
	}
	s, err := m.Session(context.Background(), "routed", ids[0])
	if err != nil || s.Version != v2 {
		t.Fatalf("meta of moved session: %+v %v", s, err)
	}
	if live := m.LiveSessions("routed"); live[v1] != 0 || live[v2] == 0 {
		t.Fatalf("live sessions by version: %v", live)
	}
}

// TestRoutingStickyAcrossRestart: the version recorded at creation holds
// after a restart, even though the share changed meanwhile.
func TestRoutingStickyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	m := openManager(t, dir)
	v1 := deploy(t, m, routedManifest, versionJS("v1")).Digest
	v2 := addVersion(t, m, routedManifest, versionJS("v2"))
	setRouting(t, m, "routed", Routing{Stable: v1, Canary: v2, Percent: 50})
	want := map[string]string{}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("r%d", i)
		want[id] = mustCall(t, m, "routed", id, "/")
	}
	setRouting(t, m, "routed", Routing{Stable: v1, Canary: v2, Percent: 1})
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.cfg.Store.Close()
	m2 := openManager(t, dir)
	for id, w := range want {
		if g := mustCall(t, m2, "routed", id, "/"); g != w {
			t.Fatalf("session %s on %s after restart, want %s", id, g, w)
		}
	}
}

// TestRoutingHostileClass: routings that name nothing real, shares out of
// range, stale revisions and deleting a serving version are refused with
// problems naming the field.
func TestRoutingHostileClass(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, t.TempDir())
	v1 := deploy(t, m, routedManifest, versionJS("v1")).Digest
	v2 := addVersion(t, m, routedManifest, versionJS("v2"))
	other := deploy(t, m, `{"name":"other","entry":"agent.js"}`, versionJS("o")).Digest
	st, err := m.ReadRouting(ctx, "routed")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		agent string
		r     Routing
		kind  api.Kind
		field string
	}{
		{"percent above 100", "routed", Routing{Stable: v1, Canary: v2, Percent: 101}, api.KindValidation, "percent"},
		{"negative percent", "routed", Routing{Stable: v1, Canary: v2, Percent: -1}, api.KindValidation, "percent"},
		{"percent without canary", "routed", Routing{Stable: v1, Percent: 10}, api.KindValidation, "percent"},
		{"canary is stable", "routed", Routing{Stable: v1, Canary: v1, Percent: 10}, api.KindValidation, "canary"},
		{"unknown canary", "routed", Routing{Stable: v1, Canary: "sha256:00", Percent: 10}, api.KindNotFound, "canary"},
		{"no stable", "routed", Routing{Canary: v2, Percent: 10}, api.KindValidation, "stable"},
		{"another agent's version", "routed", Routing{Stable: v1, Canary: other, Percent: 10}, api.KindNotFound, "canary"},
		{"oversized digest", "routed", Routing{Stable: v1, Canary: string(make([]byte, 4096)), Percent: 10}, api.KindValidation, "canary"},
		{"bad agent", "../routed", Routing{Stable: v1}, api.KindInvalidID, "agent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := m.SetRouting(ctx, c.agent, c.r, st.Revision, "")
			var p *api.Problem
			if !errors.As(err, &p) || p.Kind() != c.kind || p.Field != c.field {
				t.Fatalf("got %v, want %s on %s", err, c.kind, c.field)
			}
		})
	}
	// A stale revision loses.
	if _, err := m.SetRouting(ctx, "routed", Routing{Stable: v1, Canary: v2, Percent: 10}, st.Revision, ""); err != nil {
		t.Fatal(err)
	}
	_, err = m.SetRouting(ctx, "routed", Routing{Stable: v2}, st.Revision, "")
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale revision: %v", err)
	}
	// Serving versions cannot be deleted; others can.
	for _, d := range []string{v1, v2} {
		var p *api.Problem
		if err := m.DeleteVersion(ctx, "routed", d); !errors.As(err, &p) || p.Kind() != api.KindConflict {
			t.Fatalf("delete serving %s: %v", short(d), err)
		}
	}
	setRouting(t, m, "routed", Routing{Stable: v1})
	if err := m.DeleteVersion(ctx, "routed", v2); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteVersion(ctx, "routed", v2); err == nil {
		t.Fatal("deleted twice")
	}
	if _, err := m.SetRouting(ctx, "routed", Routing{Stable: v1, Canary: v2, Percent: 10}, 0, ""); err == nil {
		t.Fatal("routing to a deleted version")
	}
}

// TestObserverOutcomeClass: every call that reached a version is reported
// with its version, and failures (exceptions, 5xx, limit kills) are
// marked; calls refused before a version ran are not reported.
func TestObserverOutcomeClass(t *testing.T) {
	var mu sync.Mutex
	var seen []Outcome
	m := openManager(t, t.TempDir(), func(c *testConfig) {
		c.Observer = ObserverFunc(func(o Outcome) { mu.Lock(); seen = append(seen, o); mu.Unlock() })
	})
	v1 := deploy(t, m, routedManifest, versionJS("v1")).Digest
	slow := `export default { async fetch() { for (;;) {} } };`
	cases := []struct {
		path   string
		failed bool
		kind   api.Kind
	}{
		{"/", false, ""},
		{"/throw", true, api.KindAgentError},
		{"/fail", true, ""},
	}
	for _, c := range cases {
		mu.Lock()
		seen = nil
		mu.Unlock()
		_, _, _ = call(t, m, "routed", "o1", "GET", c.path, "")
		mu.Lock()
		if len(seen) != 1 || seen[0].Version != v1 || seen[0].Failed != c.failed || seen[0].Kind != c.kind || seen[0].Agent != "routed" {
			t.Fatalf("%s: outcomes %+v", c.path, seen)
		}
		mu.Unlock()
	}
	hang := deploy(t, m, `{"name":"routed","entry":"agent.js","limits":{"wall_ms":200,"cpu_ms":100}}`, slow).Digest
	mu.Lock()
	seen = nil
	mu.Unlock()
	_, _, err := call(t, m, "routed", "o2", "GET", "/", "")
	mu.Lock()
	if err == nil || len(seen) != 1 || !seen[0].Failed || seen[0].Version != hang || seen[0].Kind != api.KindSessionTimeout {
		t.Fatalf("limit kill: %v %+v", err, seen)
	}
	seen = nil
	mu.Unlock()
	_, _, _ = call(t, m, "routed", "..", "GET", "/", "")
	_, _, _ = call(t, m, "nosuch", "x", "GET", "/", "")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 0 {
		t.Fatalf("refused calls reported: %+v", seen)
	}
}
