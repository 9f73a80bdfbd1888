package rollout

import (
	"context"
	"fmt"
	"github.com/agentcloud/agentcloud/api"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
)

var threeSteps = []bundle.RolloutStep{{Percent: 10, PauseSeconds: 60}, {Percent: 50, PauseSeconds: 60}, {Percent: 100, PauseSeconds: 60}}

// TestCanaryRegressionRollbackClass: a canary that throws, answers 5xx or
// is slow is rolled back by the analysis during its first step, before
// the step's pause ends; the rollback is in the ledger with the figures
// that triggered it, chained to the rollout's start, and the canary's
// sessions move back to the stable version at their next request.
func TestCanaryRegressionRollbackClass(t *testing.T) {
	for _, mode := range []string{"throw", "500", "slow"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			e := open(t, t.TempDir(), true, defaultThresholds, 0)
			v1 := e.deploy(t, "v1")
			v2 := e.add(t, "v2", mode)
			st, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps})
			if err != nil {
				t.Fatal(err)
			}
			if st.Phase != PhaseRunning || st.Percent() != 10 {
				t.Fatalf("started: %+v", st)
			}
			canary := sessionsIn("shop", 6, 10, true, "c")
			stable := sessionsIn("shop", 6, 10, false, "s")
			e.hit(t, stable)
			e.hit(t, canary)
			e.hit(t, stable)
			e.clock.Advance(10 * time.Second) // well inside the 60s step
			if err := e.c.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := e.c.read(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if got.Phase != PhaseRolledBack || got.Stable != v1 || got.Canary != v2 || !strings.HasPrefix(got.Reason, "automatic: ") {
				t.Fatalf("after tick: %+v", got.State)
			}
			rs, _ := e.m.ReadRouting(ctx, "shop")
			if rs.Routing != (session.Routing{Stable: v1}) {
				t.Fatalf("routing after rollback: %+v", rs.Routing)
			}
			for i, b := range e.hit(t, canary) {
				if b != "v1" {
					t.Fatalf("canary session %s after rollback: %q", canary[i], b)
				}
			}
			chain := e.chain(t, got.Last)
			if len(chain) != 3 || chain[0].Type != ledger.TypeRollback || chain[1].Type != ledger.TypeRollout || chain[2].Type != ledger.TypeChange {
				t.Fatalf("ledger chain: %+v", chain)
			}
			rb := chain[0].Rollback
			if rb.FromVersion != ledgerVersion(v2) || rb.ToVersion != ledgerVersion(v1) || rb.Analysis == nil {
				t.Fatalf("rollback entry: %+v", rb)
			}
			a := rb.Analysis
			if a.Canary.Calls != 6 || a.Stable.Calls != 12 || a.Canary.Version != ledgerVersion(v2) || a.WindowSeconds != 10 {
				t.Fatalf("figures: %+v", a)
			}
			switch mode {
			case "throw", "500":
				if a.Canary.Errors != 6 || a.Stable.Errors != 0 || !strings.Contains(rb.Reason, "error rate") {
					t.Fatalf("error figures: %+v reason %q", a, rb.Reason)
				}
			case "slow":
				if a.Canary.P99Micros < 400_000 || a.Canary.P99Micros <= a.Stable.P99Micros || !strings.Contains(rb.Reason, "p99") {
					t.Fatalf("latency figures: %+v reason %q", a, rb.Reason)
				}
			}
			if chain[1].Rollout.State != ledger.RolloutStarted || chain[1].Rollout.Percent != 10 {
				t.Fatalf("start entry: %+v", chain[1].Rollout)
			}
		})
	}
}

// TestHealthyCanaryPromoted: a healthy canary goes through every step on
// the clock (a step without enough calls holds), then serves alone; the
// ledger holds started → promoted → promoted → completed, each with the
// figures it rested on.
func TestHealthyCanaryPromoted(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 0)
	v1 := e.deploy(t, "v1")
	v2 := e.add(t, "v2", "")
	if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps}); err != nil {
		t.Fatal(err)
	}
	// No calls: the step holds past its pause.
	e.clock.Advance(2 * time.Minute)
	if err := e.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.c.read(ctx, "shop"); got.Step != 0 || got.Phase != PhaseRunning {
		t.Fatalf("step without evidence moved: %+v", got.State)
	}
	// Evidence arrives: the step, whose pause is over, moves.
	e.hit(t, sessionsIn("shop", 5, 10, true, "c"))
	if err := e.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.c.read(ctx, "shop"); got.Percent() != 50 {
		t.Fatalf("step with evidence held: %+v", got.State)
	}
	for i, want := range []int{100, 0} {
		pct := threeSteps[i+1].Percent
		e.hit(t, sessionsIn("shop", 5, pct, true, "c"))
		if pct < 100 {
			e.hit(t, sessionsIn("shop", 5, pct, false, "s"))
		}
		// Before the pause ends nothing moves.
		e.clock.Advance(30 * time.Second)
		if err := e.c.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := e.c.read(ctx, "shop"); got.Percent() != pct {
			t.Fatalf("moved before the pause ended: %+v", got.State)
		}
		e.clock.Advance(31 * time.Second)
		if err := e.c.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := e.c.read(ctx, "shop")
		rs, _ := e.m.ReadRouting(ctx, "shop")
		if want == 0 {
			if got.Phase != PhaseCompleted || rs.Routing != (session.Routing{Stable: v2}) {
				t.Fatalf("not completed: %+v routing %+v", got.State, rs)
			}
			break
		}
		if got.Percent() != want || rs.Routing != (session.Routing{Stable: v1, Canary: v2, Percent: want}) {
			t.Fatalf("step %d: %+v routing %+v", i, got.State, rs)
		}
	}
	got, _ := e.c.read(ctx, "shop")
	if got.LoggedSeq != got.Seq || len(got.Pending) != 0 {
		t.Fatalf("entries not logged: %+v", got.State)
	}
	chain := e.chain(t, got.Last)
	var states []string
	for _, en := range chain {
		if en.Rollout != nil {
			states = append(states, en.Rollout.State)
			if en.Rollout.State == ledger.RolloutPromoted && (en.Rollout.Analysis == nil || en.Rollout.Analysis.Canary.Calls < 5) {
				t.Fatalf("promotion without figures: %+v", en.Rollout)
			}
		}
	}
	slices.Reverse(states)
	if want := []string{"started", "promoted", "promoted", "completed"}; !slices.Equal(states, want) {
		t.Fatalf("ledger states %v, want %v", states, want)
	}
	for _, b := range e.hit(t, sessionsIn("shop", 5, 10, false, "s")) {
		if b != "v2" {
			t.Fatalf("stable session after completion: %q", b)
		}
	}
	dep, err := e.c.Status(ctx, "shop")
	if err != nil || dep.Rollout.Phase != "completed" || len(dep.Versions) != 2 {
		t.Fatalf("status: %+v %v", dep, err)
	}
}

// TestStartExpectAndRunClass: a Start that names the version it expects
// to replace is refused (409) when anything else serves — another version,
// a canary, or an agent that appeared meanwhile — and a Start repeated by
// the same run returns the rollout it started instead of starting again
// (a resumed pipeline run), whatever phase that rollout reached.
func TestStartExpectAndRunClass(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 0)
	v1 := e.deploy(t, "v1")
	v2 := e.add(t, "v2", "")
	v3 := e.add(t, "v3", "")
	none, wrong := "", v3
	for _, exp := range []*string{&none, &wrong} {
		_, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps, Expect: exp, Run: "r0"})
		if !api.IsKind(err, api.KindConflict) {
			t.Fatalf("expect %q while %s serves: %v, want a conflict", *exp, v1, err)
		}
	}
	st, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps, Expect: &v1, Run: "r1"})
	if err != nil || st.Phase != PhaseRunning || st.Run != "r1" {
		t.Fatalf("start: %+v %v", st, err)
	}
	seq := st.Seq
	again, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps, Expect: &v1, Run: "r1"})
	if err != nil || again.Seq != seq {
		t.Fatalf("the same run's Start again: %+v %v, want the rollout unchanged", again, err)
	}
	// Another run against v1 while a canary serves: a conflict.
	if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v3, Steps: threeSteps, Expect: &v1, Run: "r2"}); !api.IsKind(err, api.KindConflict) {
		t.Fatalf("start beside a canary: %v", err)
	}
	if _, err := e.c.Rollback(ctx, "shop", "", "test"); err != nil {
		t.Fatal(err)
	}
	// Rolled back: the same run asking again does not start it again.
	again, err = e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps, Expect: &v1, Run: "r1"})
	if err != nil || again.Phase != PhaseRolledBack {
		t.Fatalf("the same run after its rollback: %+v %v, want the rolled-back rollout", again, err)
	}
}

// TestStartSameRunOnTwoMembers: two members drive one pipeline run at once
// (both poll the runs that wait for review), so both start its rollout on
// one store. Both answer with the one rollout the run started, whichever
// lost the write; a different run racing them is still refused.
func TestStartSameRunOnTwoMembers(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 0)
	other, err := New(ctx, Config{Store: e.st, Router: e.m, Ledger: e.l, Now: e.clock.Now, Thresholds: defaultThresholds})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 6 {
		agent := fmt.Sprintf("shop%d", round)
		v1 := e.addTo(t, agent, "v1")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, c := range []*Controller{e.c, other} {
			wg.Go(func() {
				_, errs[i] = c.Start(ctx, Start{Agent: agent, Version: v1, Run: "run-" + agent})
			})
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("round %d: both members start the same run: %v / %v", round, errs[0], errs[1])
		}
		st, err := e.c.Start(ctx, Start{Agent: agent, Version: v1, Run: "another-run"})
		if !api.IsKind(err, api.KindConflict) {
			t.Fatalf("round %d: another run of the serving version: %+v %v, want a conflict", round, st, err)
		}
	}
}

// addTo adds version name of agent (a bundle naming agent) without
// serving it.
func (e *env) addTo(t testing.TB, agent, name string) string {
	t.Helper()
	man := strings.Replace(manifest, `"shop"`, `"`+agent+`"`, 1)
	v, err := e.m.AddVersion(context.Background(), bundleOf(t, man, agentJS(name, "")))
	if err != nil {
		t.Fatal(err)
	}
	return v.Digest
}
