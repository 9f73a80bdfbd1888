package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// TestBatchedHibernationClass: a sweep hibernates every idle session in one
// batch, skipping a busy one, and their store writes share fsyncs (the
// store's group commit); each comes back with its heap. A shutdown
// hibernates every live session the same way.
func TestBatchedHibernationClass(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{now: time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)}
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()}) // group commit, as the daemon runs
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if st.SyncMode() != "group" {
		t.Fatalf("store sync mode %q, want group", st.SyncMode())
	}
	m := openManager(t, t.TempDir(), func(c *testConfig) {
		c.Store, c.Now = st, clk.Now
		c.JanitorInterval = time.Hour // the test sweeps itself
	})
	deploy(t, m, `{"name":"ctr","entry":"agent.js","limits":{"idle_seconds":60}}`,
		`let hits = 0; export default { fetch() { hits++; return new Response(String(hits)) } }`)
	const n = 24
	for i := range n {
		for range 2 {
			mustCall(t, m, "ctr", fmt.Sprint("s", i), "/")
		}
	}
	busy := m.sessions[sessKey{"ctr", "s0"}]
	busy.mu.Lock() // a request in flight: not idle after all
	clk.Advance(2 * time.Minute)
	rounds := st.SyncRounds()
	m.sweep(ctx)
	rounds = st.SyncRounds() - rounds
	busy.mu.Unlock()
	if s, _ := m.Session(ctx, "ctr", "s0"); s.State != "live" {
		t.Errorf("busy session hibernated: %+v", s)
	}
	for i := 1; i < n; i++ {
		if s, _ := m.Session(ctx, "ctr", fmt.Sprint("s", i)); s.State != "hibernated" {
			t.Errorf("idle session s%d not hibernated by the sweep: %+v", i, s)
		}
	}
	// Each hibernation writes its snapshot and its record. They run
	// together, so their writes can share fsync rounds; whether they do
	// depends on how long an fsync takes here (TestGroupCommitClass in the
	// store proves that concurrent writes share one).
	if peak := m.hibPeak.Load(); peak < 2 {
		t.Errorf("the sweep ran at most %d hibernation at once: not a batch", peak)
	}
	t.Logf("%d hibernations, %d writes, %d fsync rounds, %d at once", n-1, 2*(n-1), rounds, m.hibPeak.Load())
	for i := range n {
		if got := mustCall(t, m, "ctr", fmt.Sprint("s", i), "/"); got != "3" {
			t.Errorf("s%d after the sweep answered %q, want 3 (its heap kept)", i, got)
		}
	}

	// Shutdown: every live session hibernates, in a batch too.
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s, err := m.Session(ctx, "ctr", fmt.Sprint("s", i))
		if err != nil || s.State != "hibernated" || !strings.HasPrefix(s.Agent, "ctr") {
			t.Errorf("s%d after shutdown: %+v %v", i, s, err)
		}
	}
}
