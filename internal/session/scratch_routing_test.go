package session

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// TestScratchIgnoresRoutingClass: a scratch session (the pipeline's test
// stage) runs the version under test whatever the agent's routing says: a
// version that is stored but not serving, the stable or the canary one,
// under scratch names of every bucket; a routing change that retires live
// sessions leaves it running its version; its calls are never reported to
// the observer, so tests do not count in a rollout's analysis.
func TestScratchIgnoresRoutingClass(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var seen []Outcome
	m := openManager(t, t.TempDir(), func(c *testConfig) {
		c.Observer = ObserverFunc(func(o Outcome) { mu.Lock(); seen = append(seen, o); mu.Unlock() })
	})
	v1 := deploy(t, m, routedManifest, versionJS("v1")).Digest
	v2 := addVersion(t, m, routedManifest, versionJS("v2"))
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(routedManifest), "agent.js": []byte(versionJS("v3"))})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.StoreVersion(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	v3 := st.Digest
	name := map[string]string{v1: "v1", v2: "v2", v3: "v3"}
	get := func(sc *Scratch) string {
		t.Helper()
		resp, err := sc.Call(ctx, isolate.Request{Method: "GET", URL: "http://session/"})
		if err != nil || resp.Status != 200 {
			t.Fatalf("scratch call: %v %d %s", err, resp.Status, resp.Body)
		}
		return string(resp.Body)
	}
	for _, r := range []Routing{{Stable: v1, Canary: v2, Percent: 100}, {Stable: v1, Canary: v2, Percent: 50}, {Stable: v2}} {
		setRouting(t, m, "routed", r)
		for _, d := range []string{v1, v2, v3} {
			// Names spread over the buckets, so some would be routed to
			// the canary and some to the stable version.
			for i := 0; i < 4; i++ {
				sn := fmt.Sprintf("run-%d", i)
				sc, err := m.NewScratch(ctx, "routed", d, sn)
				if err != nil {
					t.Fatal(err)
				}
				if got := get(sc); got != name[d] {
					t.Fatalf("routing %+v: scratch %s of %s answered %s (bucket %d)", r, sn, name[d], got, Bucket("routed", scratchPrefix+sn))
				}
				_ = sc.Close(ctx)
			}
		}
	}
	// A live scratch session survives a routing change that retires its
	// version's live sessions.
	setRouting(t, m, "routed", Routing{Stable: v1, Canary: v3, Percent: 100})
	sc, err := m.NewScratch(ctx, "routed", v2, "run-live")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sc.Close(ctx) }()
	if got := get(sc); got != "v2" {
		t.Fatalf("scratch of v2 answered %s", got)
	}
	setRouting(t, m, "routed", Routing{Stable: v1})
	if got := get(sc); got != "v2" {
		t.Fatalf("after the routing change the scratch of v2 answered %s", got)
	}
	if got := mustCall(t, m, "routed", "live", "/"); got != "v1" {
		t.Fatalf("live session answered %s", got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, o := range seen {
		if o.Version != v1 {
			t.Fatalf("scratch call reported to the observer: %+v", seen)
		}
	}
	if len(seen) != 1 {
		t.Fatalf("outcomes %+v, want the one live call", seen)
	}
}
