package rollout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
)

func wantProblem(t *testing.T, err error, kind api.Kind, field string) {
	t.Helper()
	var p *api.Problem
	if !errors.As(err, &p) || p.Kind() != kind || (field != "" && p.Field != field) {
		t.Fatalf("got %v (%+v), want %s on %q", err, p, kind, field)
	}
}

// TestRolloutHostileClass: rollouts of versions that are not the agent's,
// steps out of range, another agent's versions, bad names, oversized and
// control-character reasons, and operations without a rollout are
// refused with problems naming the field, and change nothing.
func TestRolloutHostileClass(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 0)
	v1 := e.deploy(t, "v1")
	v2 := e.add(t, "v2", "")
	other, err := e.m.Deploy(ctx, session.Principal{}, bundleOf(t, `{"name":"other","entry":"agent.js"}`, agentJS("o", "")))
	if err != nil {
		t.Fatal(err)
	}
	starts := []struct {
		name  string
		req   Start
		kind  api.Kind
		field string
	}{
		{"unknown version", Start{Agent: "shop", Version: "sha256:" + strings.Repeat("0", 64)}, api.KindNotFound, "version"},
		{"another agent's version", Start{Agent: "shop", Version: other.Digest}, api.KindNotFound, "version"},
		{"oversized version", Start{Agent: "shop", Version: strings.Repeat("a", 10000)}, api.KindValidation, "version"},
		{"bad agent", Start{Agent: "Shop/..", Version: v2}, api.KindInvalidID, "agent"},
		{"unknown agent", Start{Agent: "nosuch", Version: v2}, api.KindNotFound, "version"},
		{"percent 0", Start{Agent: "shop", Version: v2, Steps: []bundle.RolloutStep{{Percent: 0}, {Percent: 100}}}, api.KindValidation, "steps[0].percent"},
		{"percent 101", Start{Agent: "shop", Version: v2, Steps: []bundle.RolloutStep{{Percent: 101}}}, api.KindValidation, "steps[0].percent"},
		{"shrinking", Start{Agent: "shop", Version: v2, Steps: []bundle.RolloutStep{{Percent: 50}, {Percent: 10}, {Percent: 100}}}, api.KindValidation, "steps[1].percent"},
		{"negative pause", Start{Agent: "shop", Version: v2, Steps: []bundle.RolloutStep{{Percent: 50, PauseSeconds: -1}, {Percent: 100}}}, api.KindValidation, "steps[0].pause_seconds"},
		{"the serving version", Start{Agent: "shop", Version: v1}, api.KindConflict, "version"},
	}
	for _, c := range starts {
		t.Run("start "+c.name, func(t *testing.T) {
			_, err := e.c.Start(ctx, c.req)
			wantProblem(t, err, c.kind, c.field)
		})
	}
	if rs, _ := e.m.ReadRouting(ctx, "shop"); rs.Routing != (session.Routing{Stable: v1}) {
		t.Fatalf("a refused start changed the routing: %+v", rs.Routing)
	}
	if _, err := e.c.Pause(ctx, "shop", ""); err == nil {
		t.Fatal("paused without a rollout")
	}
	if _, err := e.c.Promote(ctx, "shop", ""); err == nil {
		t.Fatal("promoted without a rollout")
	}
	if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps}); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps})
	wantProblem(t, err, api.KindConflict, "")
	for name, call := range map[string]func() error{
		"rollback to another agent's version": func() error { _, err := e.c.Rollback(ctx, "shop", other.Digest, ""); return err },
		"rollback to nothing":                 func() error { _, err := e.c.Rollback(ctx, "shop", "sha256:00", ""); return err },
		"oversized reason":                    func() error { _, err := e.c.Rollback(ctx, "shop", "", strings.Repeat("x", MaxReason+1)); return err },
		"control character reason":            func() error { _, err := e.c.Pause(ctx, "shop", "bad\x1b[2Jreason"); return err },
		"invalid utf-8 reason":                func() error { _, err := e.c.Promote(ctx, "shop", "\xff\xfe"); return err },
		"bad agent":                           func() error { _, err := e.c.Rollback(ctx, "../x", "", ""); return err },
		"status of bad agent":                 func() error { _, err := e.c.Status(ctx, strings.Repeat("a", 100)); return err },
		"status of unknown agent":             func() error { _, err := e.c.Status(ctx, "nosuch"); return err },
	} {
		t.Run(name, func(t *testing.T) {
			if err := call(); err == nil {
				t.Fatal("accepted")
			} else if p := (*api.Problem)(nil); !errors.As(err, &p) || p.Status >= 500 && p.Kind().Status() >= 500 {
				t.Fatalf("not a 4xx problem: %v", err)
			}
		})
	}
	if got, _ := e.c.read(ctx, "shop"); got.Phase != PhaseRunning || got.Percent() != 10 {
		t.Fatalf("refused calls changed the rollout: %+v", got.State)
	}
	// Pause holds the step past its pause; resume restarts it.
	if _, err := e.c.Pause(ctx, "shop", "looking at logs"); err != nil {
		t.Fatal(err)
	}
	e.hit(t, sessionsIn("shop", 6, 10, true, "c"))
	e.clock.Advance(time.Hour)
	if err := e.c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.c.read(ctx, "shop"); got.Phase != PhasePaused || got.Percent() != 10 {
		t.Fatalf("paused rollout moved: %+v", got.State)
	}
	if _, err := e.c.Resume(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	st, err := e.c.Promote(ctx, "shop", "")
	if err != nil || st.Percent() != 50 {
		t.Fatalf("promote: %+v %v", st, err)
	}
	dep, err := e.c.Status(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]api.VersionShare{}
	for _, v := range dep.Versions {
		roles[v.Version] = v
	}
	if roles[v1].Role != api.RoleStable || roles[v1].Percent != 50 || roles[v2].Role != api.RoleCanary || roles[v2].Percent != 50 || dep.Rollout.NextStepAt == nil {
		t.Fatalf("status: %+v", dep)
	}
}

// TestRollbackRacesStepAdvance: a rollback on one node races a step
// advance on another (two controllers on one store): the compare-and-set
// decides, the rollback wins either way, the routing ends on the stable
// version, and the ledger holds every transition that was written.
func TestRollbackRacesStepAdvance(t *testing.T) {
	ctx := context.Background()
	th := defaultThresholds
	th.MinCalls = 0
	e := open(t, t.TempDir(), true, th, 0)
	other, err := New(ctx, Config{Store: e.st, Router: e.m, Ledger: e.l, Now: e.clock.Now, Thresholds: th})
	if err != nil {
		t.Fatal(err)
	}
	v1 := e.deploy(t, "v1")
	v2 := e.add(t, "v2", "")
	for round := range 8 {
		if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: threeSteps}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		e.clock.Advance(time.Minute + time.Second)
		var wg sync.WaitGroup
		var tickErr, rbErr error
		wg.Go(func() { tickErr = other.Tick(ctx) })
		wg.Go(func() { _, rbErr = e.c.Rollback(ctx, "shop", "", "race") })
		wg.Wait()
		if rbErr != nil {
			t.Fatalf("round %d: rollback lost: %v", round, rbErr)
		}
		if tickErr != nil {
			t.Logf("round %d: tick: %v", round, tickErr)
		}
		got, _ := e.c.read(ctx, "shop")
		rs, _ := e.m.ReadRouting(ctx, "shop")
		if got.Phase != PhaseRolledBack || rs.Routing != (session.Routing{Stable: v1}) {
			t.Fatalf("round %d: %+v routing %+v", round, got.State, rs.Routing)
		}
		if got.LoggedSeq != got.Seq || len(got.Pending) != 0 {
			t.Fatalf("round %d: entries unlogged: %+v", round, got.State)
		}
		chain := e.chain(t, got.Last)
		if chain[0].Type != ledger.TypeRollback {
			t.Fatalf("round %d: newest entry %s", round, chain[0].Type)
		}
		// The chain reaches this round's start.
		found := false
		for _, en := range chain {
			if en.Rollout != nil && en.Rollout.State == ledger.RolloutStarted {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("round %d: chain does not reach the start", round)
		}
	}
}
