package rollout

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
)

var straight = []bundle.RolloutStep{{Percent: 100}}

// TestRollbackAndVersionsKept: after rollouts complete, the oldest
// versions beyond the kept count are pruned (never the serving one or the
// one a rollback returns to); Rollback without a target returns to the
// version the latest rollout replaced, with one to any kept version, and
// a pruned version is a 404 naming "to". Every rollback is in the ledger.
func TestRollbackAndVersionsKept(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 2)
	v1 := e.deploy(t, "v1")
	var vs []string
	for _, name := range []string{"v2", "v3", "v4"} {
		v := e.add(t, name, "")
		st, err := e.c.Start(ctx, Start{Agent: "shop", Version: v, Steps: straight})
		if err != nil || st.Phase != PhaseCompleted {
			t.Fatalf("start %s: %+v %v", name, st, err)
		}
		vs = append(vs, v)
	}
	v2, v3, v4 := vs[0], vs[1], vs[2]
	kept, err := e.m.Versions(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0].Digest != v3 || kept[1].Digest != v4 {
		t.Fatalf("kept %v, want v3 and v4", kept)
	}
	_ = v1
	_ = v2
	st, err := e.c.Rollback(ctx, "shop", "", "bad release")
	if err != nil || st.Phase != PhaseRolledBack || st.Stable != v3 || st.Canary != v4 {
		t.Fatalf("rollback: %+v %v", st, err)
	}
	if got := e.hit(t, []string{"a", "b"}); got[0] != "v3" || got[1] != "v3" {
		t.Fatalf("served after rollback: %v", got)
	}
	if _, err := e.c.Rollback(ctx, "shop", v3, ""); err == nil {
		t.Fatal("rolled back to the serving version")
	}
	if st, err = e.c.Rollback(ctx, "shop", v4, "fixed after all"); err != nil || st.Stable != v4 {
		t.Fatalf("rollback to v4: %+v %v", st, err)
	}
	_, err = e.c.Rollback(ctx, "shop", v1, "")
	wantProblem(t, err, api.KindNotFound, "to")
	chain := e.chain(t, st.Last)
	if chain[0].Type != ledger.TypeRollback || chain[0].Rollback.ToVersion != ledgerVersion(v4) || chain[1].Rollback.ToVersion != ledgerVersion(v3) {
		t.Fatalf("ledger: %+v", chain[:2])
	}
	if rs, _ := e.m.ReadRouting(ctx, "shop"); rs.Routing != (session.Routing{Stable: v4}) {
		t.Fatalf("routing: %+v", rs.Routing)
	}
	// A tick long after does not undo a deploy made outside the rollout.
	v5, err := e.m.Deploy(ctx, session.Principal{}, bundleOf(t, manifest, agentJS("v5", "")))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	if err := e.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if rs, _ := e.m.ReadRouting(ctx, "shop"); rs.Routing != (session.Routing{Stable: v5.Digest}) {
		t.Fatalf("tick undid a deploy: %+v", rs.Routing)
	}
}

// BenchmarkRollback measures rollback_ms: moving an agent with a canary
// at 10 % back to its stable version (the state's compare-and-set, the
// routing switch, retiring live canary sessions and the durable ledger
// append; the metric is the median), with the real session manager, store (fsync on) and ledger.
func BenchmarkRollback(b *testing.B) {
	ctx := context.Background()
	e := open(b, b.TempDir(), false, defaultThresholds, 0)
	e.deploy(b, "v1")
	v2 := e.add(b, "v2", "")
	canary := sessionsIn("shop", 4, 10, true, "c")
	var took []time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps}); err != nil {
			b.Fatal(err)
		}
		e.hit(b, canary)
		b.StartTimer()
		start := time.Now()
		if _, err := e.c.Rollback(ctx, "shop", "", "bench"); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "rollback_ms")
}

// TestAnalysisResumesAfterRestart: a rollout survives a restart, its
// window begins again at the first tick, and a failing canary is still
// rolled back.
func TestAnalysisResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := open(t, dir, false, defaultThresholds, 0)
	v1 := e.deploy(t, "v1")
	v2 := e.add(t, "v2", "throw")
	if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps}); err != nil {
		t.Fatal(err)
	}
	e.close()
	e = open(t, dir, false, defaultThresholds, 0)
	if err := e.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	e.hit(t, sessionsIn("shop", 6, 10, true, "c"))
	if err := e.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := e.c.read(ctx, "shop")
	if got.Phase != PhaseRolledBack || got.Stable != v1 || got.Analysis == nil || got.Analysis.Canary.Errors != 6 {
		t.Fatalf("after restart: %+v", got.State)
	}
}

// TestDeployDuringRolloutSupersedes: a plain deploy while a rollout runs
// stands; the next tick ends the rollout as superseded without touching
// the routing, and later ticks are quiet.
func TestDeployDuringRolloutSupersedes(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 0)
	e.deploy(t, "v1")
	v2 := e.add(t, "v2", "")
	if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps}); err != nil {
		t.Fatal(err)
	}
	v3 := e.deploy(t, "v3")
	for range 2 {
		e.clock.Advance(time.Hour)
		if err := e.c.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := e.c.read(ctx, "shop")
	rs, _ := e.m.ReadRouting(ctx, "shop")
	if got.Phase != PhaseSuperseded || rs.Routing != (session.Routing{Stable: v3}) {
		t.Fatalf("state %+v routing %+v", got.State, rs.Routing)
	}
	if got := e.hit(t, []string{"x"}); got[0] != "v3" {
		t.Fatalf("served %q", got[0])
	}
}
