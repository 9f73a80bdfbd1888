//go:build linux

package process

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// fakeNow is a clock the keeper's tests move by hand.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeNow) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeNow) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openNS(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func isClosed(f *os.File) bool { _, err := f.Stat(); return err != nil }

// TestNetnsKeeperClass: a held namespace is released once the tier has
// been quiet for a moment, not while an activity is under way (however
// long it takes) nor just after one ended, but never later than the
// maximum age however busy it stays; beyond the maximum count a batch goes
// at once; close releases everything, and what is held after close goes at
// once. Concurrent holds, touches and polls are safe (run with -race).
func TestNetnsKeeperClass(t *testing.T) {
	clk := &fakeNow{t: time.Unix(1000, 0)}
	k := newNetnsKeeper(100*time.Millisecond, 2*time.Second, 4, clk.now)
	a := openNS(t)
	end := k.busy()
	k.add(a)
	clk.add(time.Second) // a long exec
	k.poll()
	if isClosed(a) {
		t.Fatal("released while an activity was under way")
	}
	end()
	end() // ending twice counts once
	k.poll()
	if isClosed(a) {
		t.Fatal("released just after an activity ended")
	}
	clk.add(150 * time.Millisecond)
	k.poll()
	if !isClosed(a) || k.count() != 0 {
		t.Fatal("not released after a quiet moment")
	}

	// Busy all the time: the maximum age still releases.
	b := openNS(t)
	k.add(b)
	for range 25 {
		end := k.busy()
		clk.add(90 * time.Millisecond)
		k.poll()
		end()
	}
	if !isClosed(b) {
		t.Fatal("held past the maximum age while the tier stayed busy")
	}

	// Beyond the maximum count: released at once, whatever the clock.
	var batch []*os.File
	for range 4 {
		f := openNS(t)
		batch = append(batch, f)
		k.busy()() // just ended: not quiet
		k.add(f)
	}
	for i, f := range batch {
		if !isClosed(f) {
			t.Fatalf("namespace %d of a full batch still held", i)
		}
	}

	c := openNS(t)
	k.add(c)
	k.start()
	k.close()
	if !isClosed(c) || k.count() != 0 {
		t.Fatal("close left a namespace held")
	}
	d := openNS(t)
	k.add(d)
	if !isClosed(d) {
		t.Fatal("a namespace held after close was kept")
	}
	k.close() // twice is fine

	// Races: holds, touches and polls from many goroutines, then close.
	k = newNetnsKeeper(time.Millisecond, 10*time.Millisecond, 3, time.Now)
	k.start()
	var wg sync.WaitGroup
	var all []*os.File
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for range 20 {
				f := openNS(t)
				mu.Lock()
				all = append(all, f)
				mu.Unlock()
				end := k.busy()
				k.add(f)
				k.poll()
				end()
			}
		})
	}
	wg.Wait()
	k.close()
	for i, f := range all {
		if !isClosed(f) {
			t.Fatalf("namespace %d still held after close", i)
		}
	}
}

// TestClosedSandboxNetnsHeldClass: closing a real sandbox kills every
// process in it at once (its init is gone when Close returns) and only its
// network namespace, the very one it had, stays held until the tier
// releases it; closing the tier releases it.
func TestClosedSandboxNetnsHeldClass(t *testing.T) {
	tier := newTestTier(t)
	sb, err := sandbox.Create(t.Context(), tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	b := sb.(*box)
	p, err := sb.NetNSPath()
	if err != nil {
		t.Fatal(err)
	}
	var want syscall.Stat_t
	if err := syscall.Stat(p, &want); err != nil {
		t.Fatal(err)
	}
	end := tier.netns.busy() // an exec under way elsewhere: the keeper holds on
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	default:
		t.Fatal("the sandbox init still runs after Close")
	}
	// Under the keeper's lock: what it holds is not being released.
	tier.netns.mu.Lock()
	n, found := len(tier.netns.held), false
	for _, f := range tier.netns.held {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			found = true
		}
	}
	tier.netns.mu.Unlock()
	if !found {
		t.Fatalf("%d namespaces held, none the sandbox's", n)
	}
	end()
	tier.Close()
	if n := tier.netns.count(); n != 0 {
		t.Fatalf("%d network namespaces held after the tier closed", n)
	}
}
