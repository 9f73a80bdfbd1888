package session

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// TestCallContextClass: a call's context (callCtx, inside its callHost)
// behaves as the context.WithCancelCause context it replaced. It ends with
// the watch's cause, with its parent's (an ended parent, before or during
// the call), or with nil once the call is over; whatever still holds it
// then sees it done. The isolate's preemption runs exactly once, or never
// when disarmed first, whichever way an end races a disarm. A streamed
// call (a parent that cannot end) allocates nothing for its limits.
func TestCallContextClass(t *testing.T) {
	m, v := &Manager{}, &version{wall: time.Hour}
	s := &session{}

	// Over: done, context.Canceled, no cause; a late Done is closed too.
	h := &callHost{s: s}
	ctx := m.limitCtx(context.Background(), true, v, h)
	if ctx.Err() != nil {
		t.Fatal("a new call's context has ended")
	}
	if cause := h.endCall(); cause != nil {
		t.Fatalf("cause of a call that was not stopped = %v", cause)
	}
	select {
	case <-ctx.Done():
	default:
		t.Fatal("a finished call's context is not done")
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("Err = %v, want context.Canceled", ctx.Err())
	}

	// Stopped by the watch: its cause, and Done closes for a waiter.
	h = &callHost{s: s}
	ctx = m.limitCtx(context.Background(), false, v, h)
	done := ctx.Done()
	h.cpu.mu.Lock()
	h.cpu.stop(errCPU)
	h.cpu.mu.Unlock()
	<-done
	if cause := h.endCall(); !errors.Is(cause, errCPU) {
		t.Fatalf("cause = %v, want errCPU", cause)
	}

	// A parent that ends during the call ends it with the parent's cause;
	// one that ended before ends it at once.
	parentCause := errors.New("client gone")
	pctx, pcancel := context.WithCancelCause(context.Background())
	h = &callHost{s: s}
	ctx = m.limitCtx(pctx, false, v, h)
	pcancel(parentCause)
	<-ctx.Done()
	if cause := h.endCall(); !errors.Is(cause, parentCause) {
		t.Fatalf("cause = %v, want the parent's", cause)
	}
	h = &callHost{s: s}
	ctx = m.limitCtx(pctx, false, v, h)
	if ctx.Err() == nil {
		t.Fatal("a call under an ended parent has not ended")
	}
	ran := false
	ctx.(isolate.StopNotifier).NotifyStop(func() { ran = true })
	if !ran {
		t.Fatal("NotifyStop on an ended context did not run at once")
	}
	if cause := h.endCall(); !errors.Is(cause, parentCause) {
		t.Fatalf("cause = %v, want the parent's", cause)
	}

	// Detached (a streamed call): the parent's values, not its end, and a
	// value lookup through it allocates nothing (the engine looks values
	// up at every call into the guest).
	type key struct{}
	dctx, dcancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	h = &callHost{s: s}
	ctx = m.limitCtx(dctx, true, v, h)
	dcancel()
	if ctx.Err() != nil || ctx.Value(key{}) != "v" {
		t.Fatalf("detached: Err %v, value %v", ctx.Err(), ctx.Value(key{}))
	}
	if _, ok := ctx.Deadline(); ok {
		t.Fatal("a detached call has its parent's deadline")
	}
	if n := testing.AllocsPerRun(100, func() { _ = ctx.Value(struct{ k int }{}) }); n != 0 {
		t.Fatalf("%v allocations per value lookup", n)
	}
	if cause := h.endCall(); cause != nil {
		t.Fatalf("detached call stopped by its parent: %v", cause)
	}

	// An end racing the disarm: the preemption runs once, or never if the
	// disarm won.
	for i := range 2000 {
		h = &callHost{s: s}
		ctx = m.limitCtx(context.Background(), false, v, h)
		n := ctx.(isolate.StopNotifier)
		var fired atomic.Int32
		n.NotifyStop(func() { fired.Add(1) })
		var wg sync.WaitGroup
		wg.Go(func() { h.lim.cancel(errWall) })
		stopped := n.StopNotify()
		wg.Wait()
		h.endCall()
		if want := map[bool]int32{true: 0, false: 1}[stopped]; fired.Load() != want {
			t.Fatalf("race %d: StopNotify %v, preemption ran %d times", i, stopped, fired.Load())
		}
	}

	// A streamed call's limits allocate nothing (the watch's timer is
	// made once per session).
	parent, stop := context.WithCancel(context.Background())
	defer stop()
	h = &callHost{s: s}
	if n := testing.AllocsPerRun(200, func() {
		h.lim = callCtx{}
		_ = m.limitCtx(parent, true, v, h)
		h.endCall()
	}); n != 0 {
		t.Fatalf("%v allocations per call for the call's limits", n)
	}
}

// TestCallParentCancelClass: a session call (not streamed) whose caller
// goes away mid-call is stopped by its parent's end, not left to run to its
// wall-time limit, and the session serves the next request.
func TestCallParentCancelClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"spin","entry":"agent.js","limits":{"cpu_ms":600000,"wall_ms":600000}}`, `
export default {
  async fetch(request) {
    if (new URL(request.url).pathname === "/loop") { for (;;) {} }
    return new Response("fine");
  }
};`)
	mustCall(t, m, "spin", "x", "/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The caller goes away once the call is armed (whether the guest has
	// started yet or not, it must stop).
	testAfterArm = func() { go cancel() }
	t.Cleanup(func() { testAfterArm = nil })
	_, err := m.Call(ctx, "spin", "x", isolate.Request{Method: "GET", URL: "http://agents.local/loop"})
	testAfterArm = nil
	if !api.IsKind(err, api.KindSessionTimeout) || strings.Contains(err.Error(), "wall time") {
		t.Fatalf("err = %v, want a session timeout for the canceled caller", err)
	}
	if body := mustCall(t, m, "spin", "x", "/"); body != "fine" {
		t.Fatalf("after the canceled call: %q", body)
	}
}

// TestDetachClass: detach is context.WithoutCancel for everything a call's
// host does with it: the parent's values, never its end or deadline (also
// for a child derived from it), and a value lookup allocates nothing.
func TestDetachClass(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithTimeout(context.WithValue(context.Background(), key{}, "v"), time.Hour)
	d := detach(parent)
	cancel()
	if d.Err() != nil || d.Done() != nil || d.Value(key{}) != "v" {
		t.Fatalf("detached: Err %v, Done %v, value %v", d.Err(), d.Done(), d.Value(key{}))
	}
	if _, ok := d.Deadline(); ok {
		t.Fatal("detached has its parent's deadline")
	}
	child, stop := context.WithCancel(d)
	defer stop()
	if child.Err() != nil || child.Value(key{}) != "v" {
		t.Fatalf("child of detached: Err %v, value %v", child.Err(), child.Value(key{}))
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.Value(struct{ k int }{}) }); n != 0 {
		t.Fatalf("%v allocations per value lookup", n)
	}
}
