package sandbox_test

import (
	"errors"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestPauseStopsClockClass: a paused sandbox is never reaped however long
// it stays paused, resume restarts its clock with exactly what was left,
// extend while paused sets what is left, and pausing twice or resuming a
// running sandbox are answered without touching the clock.
func TestPauseStopsClockClass(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{&fakeTier{}}, Now: clk.Now, ReapInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := t.Context()
	sb, err := m.Create(ctx, "p", sandbox.Spec{Tier: "fake", Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(4 * time.Minute)
	if err := m.Pause(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(ctx, sb.ID()); !errors.Is(err, sandbox.ErrPaused) {
		t.Fatalf("second pause: %v", err)
	}
	clk.Advance(24 * time.Hour)
	if reaped := m.ReapExpired(ctx); len(reaped) != 0 {
		t.Fatalf("reaped while paused: %v", reaped)
	}
	if i, _ := m.Info(sb.ID()); i.State != sandbox.StatePaused || i.Deadline.Sub(clk.Now()) != 6*time.Minute {
		t.Fatalf("paused: %+v", i)
	}
	if err := m.Resume(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	if err := m.Resume(ctx, sb.ID()); err != nil {
		t.Fatalf("resume of a running sandbox: %v", err)
	}
	if i, _ := m.Info(sb.ID()); i.State != sandbox.StateRunning || i.Deadline.Sub(clk.Now()) != 6*time.Minute {
		t.Fatalf("resumed: %+v", i)
	}
	if err := m.Pause(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Extend(sb.ID(), time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if err := m.Resume(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if reaped := m.ReapExpired(ctx); len(reaped) != 0 {
		t.Fatalf("reaped early: %v", reaped)
	}
	clk.Advance(time.Second)
	if reaped := m.ReapExpired(ctx); len(reaped) != 1 {
		t.Fatalf("not reaped at its end: %v", reaped)
	}
	for _, op := range []func() error{
		func() error { return m.Pause(ctx, "nope") }, func() error { return m.Resume(ctx, "nope") },
		func() error { _, err := m.StartSandbox(ctx, "nope"); return err },
		func() error { _, err := m.Fork(ctx, "nope", 1); return err },
	} {
		if err := op(); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	}
}
