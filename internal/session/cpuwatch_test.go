package session

import (
	"context"
	"errors"
	"runtime"
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
		h.cpu = &w
		w.arm(time.Hour, cpu, h, cancel)
		return ctx
	}
	// Over the limit: canceled with errCPU at a yield (the guest's, here
	// the spinning test's; poll, generous bound).
	h0 := &callHost{}
	ctx := run(time.Millisecond, h0)
	if w.claim() {
		t.Fatal("second claim of a busy watch succeeded")
	}
	// Spin: the thread's CPU clock runs (a bound of 30 s, not a speed
	// check).
	for deadline := time.Now().Add(30 * time.Second); ctx.Err() == nil; {
		if time.Now().After(deadline) {
			t.Fatal("call over its CPU time was not canceled")
		}
		h0.Yield()
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
	// A thread that waits (blocked, or for a core on a loaded node) after
	// the call's first yield uses no CPU time: ten times the limit asleep
	// is not over it, at a yield or at the timer.
	h = &callHost{}
	ctx = run(20*time.Millisecond, h)
	h.Yield()
	time.Sleep(200 * time.Millisecond)
	h.Yield()
	w.check()
	if ctx.Err() != nil {
		t.Fatal("time the thread spent not running counted as CPU time")
	}
	w.disarm()
	// Before any yield the timer cannot judge CPU time and waits.
	ctx = run(20*time.Millisecond, &callHost{})
	time.Sleep(40 * time.Millisecond)
	w.check()
	if ctx.Err() != nil {
		t.Fatal("a call that never yielded was judged by its wall time")
	}
	w.disarm()
}

// TestCPUWatchYieldClass: a yield judges only the call armed on the watch.
// One from a call that is over, or from another call's host (a concurrent
// call on a fresh watch), does not cancel the current call, however far
// over the limit that other call's wall time is. A call whose thread was
// off the CPU between arm and its first yield (a loaded node) is not
// charged that time, at the yields or at the timer; a call that then
// spends its limit on the CPU is stopped, at a yield and at the timer.
func TestCPUWatchYieldClass(t *testing.T) {
	var w cpuWatch
	ctx, cancel := context.WithCancelCause(context.Background())
	w.claim()
	mine := &callHost{cpu: &w}
	w.arm(time.Hour, 10*time.Millisecond, mine, cancel)
	other := &callHost{cpu: &w}
	time.Sleep(30 * time.Millisecond) // the wall time passes the limit
	other.Yield()
	if ctx.Err() != nil {
		t.Fatal("another call's yield judged the armed call")
	}
	w.disarm()
	mine.Yield() // over: does nothing
	if ctx.Err() != nil {
		t.Fatal("a yield after disarm judged the call")
	}
	// Off the CPU for three times the limit before the first yield: not
	// over, at the first yield, a second one or the timer.
	for _, judge := range []string{"yield", "timer"} {
		ctx, cancel = context.WithCancelCause(context.Background())
		w.claim()
		runtime.LockOSThread() // arm locks too; the spin below needs this thread
		w.arm(time.Hour, 10*time.Millisecond, mine, cancel)
		time.Sleep(30 * time.Millisecond)
		mine.Yield()
		mine.Yield()
		w.check()
		if ctx.Err() != nil {
			t.Fatalf("%s: time off the CPU before the first yield counted as CPU time (cause %v)", judge, context.Cause(ctx))
		}
		// Then the call spins: stopped once it has spent its limit.
		deadline := time.Now().Add(10 * time.Second)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			if judge == "yield" {
				mine.Yield()
			} else {
				w.check()
			}
		}
		if !errors.Is(context.Cause(ctx), errCPU) {
			t.Fatalf("%s: cause = %v, want errCPU for a call that spent its limit", judge, context.Cause(ctx))
		}
		w.disarm()
		runtime.UnlockOSThread()
	}
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
