package isolate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// fakeGlobal is a stop global without a module.
type fakeGlobal struct {
	api.MutableGlobal
	v atomic.Uint64
}

func (g *fakeGlobal) Set(v uint64) { g.v.Store(v) }
func (g *fakeGlobal) Get() uint64  { return g.v.Load() }

// TestPreemptRearmClass: the preempter reuses its functions call after
// call, so every way a call can end must leave it ready for the next: a
// context that ends during the call raises stop (and disarm lowers it); one
// that ends while disarm runs (a race) or after it leaves stop down and
// the next call unpreempted; a context that never ends costs nothing.
func TestPreemptRearmClass(t *testing.T) {
	g := &fakeGlobal{}
	p := &preempter{stop: g}
	for i := range 3000 {
		ctx, cancel := context.WithCancel(context.Background())
		disarm := p.arm(ctx)
		switch i % 3 {
		case 0: // ends during the call: the guest is stopped
			cancel()
			// fire marks fired before it raises stop (so a trap is
			// always reported as a timeout): wait for both.
			for deadline := time.Now().Add(30 * time.Second); !p.fired.Load() || g.Get() != 1; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("a canceled call was not preempted: fired %v, stop %d", p.fired.Load(), g.Get())
				}
			}
		case 1: // ends as the call ends
			go cancel()
		}
		disarm()
		cancel()
		if g.Get() != 0 || p.fired.Load() {
			t.Fatalf("call %d: stop %d fired %v after disarm: the next call would be preempted", i, g.Get(), p.fired.Load())
		}
	}
	if d := p.arm(context.Background()); d == nil {
		t.Fatal("no disarm for a context without Done")
	} else {
		d()
	}
	if n := testing.AllocsPerRun(100, func() { p.arm(context.Background())() }); n != 0 {
		t.Fatalf("%v allocations arming a context that never ends", n)
	}
}

// notifyCtx is a StopNotifier for the preempter's tests.
type notifyCtx struct {
	context.Context
	mu    sync.Mutex
	ended bool
	f     func()
}

func (c *notifyCtx) end() {
	c.mu.Lock()
	c.ended = true
	f := c.f
	c.f = nil
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

func (c *notifyCtx) NotifyStop(f func()) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		f()
		return
	}
	c.f = f
	c.mu.Unlock()
}

func (c *notifyCtx) StopNotify() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	armed := c.f != nil
	c.f = nil
	return armed
}

// TestPreemptNotifierClass: a context that notifies its end itself
// (StopNotifier) is watched without context.AfterFunc and without
// allocations, and every way it can end leaves the preempter ready for the
// next call, as TestPreemptRearmClass checks for other contexts: ended
// during the call (stop raised, then lowered by disarm), racing disarm,
// after disarm, before arm.
func TestPreemptNotifierClass(t *testing.T) {
	g := &fakeGlobal{}
	p := &preempter{stop: g}
	for i := range 3000 {
		c := &notifyCtx{Context: context.Background()}
		if i%4 == 3 {
			c.end() // ended before the call armed
		}
		disarm := p.arm(c)
		switch i % 4 {
		case 0, 3:
			if i%4 == 0 {
				c.end()
			}
			if !p.fired.Load() || g.Get() != 1 {
				t.Fatalf("call %d: an ended call was not preempted: fired %v, stop %d", i, p.fired.Load(), g.Get())
			}
		case 1:
			go c.end()
		}
		disarm()
		c.end()
		if g.Get() != 0 || p.fired.Load() {
			t.Fatalf("call %d: stop %d fired %v after disarm: the next call would be preempted", i, g.Get(), p.fired.Load())
		}
	}
	c := &notifyCtx{Context: context.Background()}
	if n := testing.AllocsPerRun(100, func() { p.arm(c)() }); n != 0 {
		t.Fatalf("%v allocations arming a StopNotifier", n)
	}
}
