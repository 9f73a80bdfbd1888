package session

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCPUWatchReuseClass: one session's watch serves call after call. A
// call over its CPU time is canceled with errCPU; the next call on the
// same watch is not canceled by what is left of the previous call's
// timer; host time does not count; a second concurrent claim is refused.
// The same watch enforces the wall-time limit (TestCallWallLimitClass).
func TestCPUWatchReuseClass(t *testing.T) {
	var w cpuWatch
	run := func(cpu time.Duration, h *callHost) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		if !w.claim() {
			t.Fatal("claim of a free watch refused")
		}
		w.arm(time.Hour, cpu, h, cancel)
		return ctx
	}
	// Over the limit: canceled with errCPU (poll, generous bound).
	ctx := run(time.Millisecond, &callHost{})
	if w.claim() {
		t.Fatal("second claim of a busy watch succeeded")
	}
	// Spin: the thread's CPU clock runs (a bound of 30 s, not a speed
	// check).
	for deadline := time.Now().Add(30 * time.Second); ctx.Err() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("call over its CPU time was not canceled")
		}
	}
	if !errors.Is(context.Cause(ctx), errCPU) {
		t.Fatalf("cause = %v, want errCPU", context.Cause(ctx))
	}
	w.disarm()
	// Reused with a long limit, right after a fire: not canceled.
	for range 50 {
		ctx = run(time.Hour, &callHost{})
		w.check() // a stale fire from an earlier call judges this call
		if ctx.Err() != nil {
			t.Fatal("a reused watch canceled a call within its limit")
		}
		w.disarm()
	}
	// Time in host calls is not CPU time.
	h := &callHost{}
	h.hostSince.Store(time.Now().Add(-time.Hour).UnixNano())
	ctx = run(time.Minute, h)
	w.check()
	if ctx.Err() != nil {
		t.Fatal("time spent in host calls counted as CPU time")
	}
	w.disarm()
	// Disarmed: a late check does nothing.
	w.check()
	// A thread that waits (blocked, or for a core on a loaded node) uses
	// no CPU time: ten times the limit asleep is not over it.
	ctx = run(20*time.Millisecond, &callHost{})
	time.Sleep(200 * time.Millisecond)
	w.check()
	if ctx.Err() != nil {
		t.Fatal("time the thread spent not running counted as CPU time")
	}
	w.disarm()
}

// TestCallWallLimitClass: the wall-time limit, watched by the session's
// watch instead of a deadline context per call, ends a call that waits
// (no CPU used) with errWall, with or without a CPU limit and whichever
// limit is the smaller; a call within both is not canceled, also on a
// watch reused right after a wall fire.
func TestCallWallLimitClass(t *testing.T) {
	var w cpuWatch
	run := func(wall, cpu time.Duration) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		if !w.claim() {
			t.Fatal("claim of a free watch refused")
		}
		w.arm(wall, cpu, &callHost{}, cancel)
		return ctx
	}
	waitCanceled := func(ctx context.Context, what string) {
		t.Helper()
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: not canceled", what)
		}
	}
	for _, c := range []struct {
		name      string
		wall, cpu time.Duration
	}{
		{"wall only", 20 * time.Millisecond, 0},
		{"cpu limit larger", 20 * time.Millisecond, time.Minute},
		{"cpu limit smaller but idle", 30 * time.Millisecond, 10 * time.Millisecond},
		{"cpu limit equal", 20 * time.Millisecond, 20 * time.Millisecond},
	} {
		ctx := run(c.wall, c.cpu)
		waitCanceled(ctx, c.name) // the call sleeps: only the wall limit can end it
		if !errors.Is(context.Cause(ctx), errWall) {
			t.Errorf("%s: cause = %v, want errWall", c.name, context.Cause(ctx))
		}
		w.disarm()
		// Reused right after the fire, within its limits: not canceled.
		ctx = run(time.Hour, c.cpu)
		w.check()
		if ctx.Err() != nil {
			t.Errorf("%s: a reused watch canceled a call within its limits", c.name)
		}
		w.disarm()
	}
}
