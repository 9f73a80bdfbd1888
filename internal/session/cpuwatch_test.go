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
func TestCPUWatchReuseClass(t *testing.T) {
	var w cpuWatch
	run := func(cpu time.Duration, h *callHost) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		if !w.claim() {
			t.Fatal("claim of a free watch refused")
		}
		w.arm(cpu, h, cancel)
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
