package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// countingTier is a fakeTier whose prepares take a moment, fail now and
// then, and are counted while they run; every box it hands out is tracked
// until it is activated or discarded.
type countingTier struct {
	fakeTier
	running, maxRunning atomic.Int32
	calls               atomic.Int32
	mu                  sync.Mutex
	out                 map[*fakeBox]bool // prepared, neither activated nor discarded
}

func (t *countingTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	if sandbox.IsForPool(ctx) { // a pool's refill, not a cold create
		n := t.running.Add(1)
		defer t.running.Add(-1)
		for {
			m := t.maxRunning.Load()
			if n <= m || t.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
	}
	n := t.calls.Add(1)
	time.Sleep(time.Duration(1+n%3) * time.Millisecond) // the preparers overlap, out of step
	if n%5 == 0 {
		return nil, errors.New("prepare failed (on purpose)")
	}
	pr, _ := t.fakeTier.Prepare(ctx, tmpl)
	b := pr.(*fakeBox)
	t.mu.Lock()
	t.out[b] = true
	t.mu.Unlock()
	return &countedBox{fakeBox: b, t: t}, nil
}

func (t *countingTier) settle(b *fakeBox) {
	t.mu.Lock()
	delete(t.out, b)
	t.mu.Unlock()
}

func (t *countingTier) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.out)
}

type countedBox struct {
	*fakeBox
	t *countingTier
}

func (b *countedBox) Activate(ctx context.Context, id string, s sandbox.Spec) (sandbox.Sandbox, error) {
	b.t.settle(b.fakeBox)
	return b.fakeBox.Activate(ctx, id, s)
}

func (b *countedBox) Discard() error { b.t.settle(b.fakeBox); return b.fakeBox.Discard() }

// TestPoolRefillConcurrentClass: a pool with several preparers prepares
// in parallel but never past its size, also while claims race the refill
// and prepares fail; what it holds at Close is discarded, and a negative
// Refill is refused.
func TestPoolRefillConcurrentClass(t *testing.T) {
	if _, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{&fakeTier{}},
		Pools: []sandbox.PoolConfig{{Tier: "fake", Size: 2, Refill: -1}}}); err == nil {
		t.Fatal("a negative refill was accepted")
	}
	const size, refill = 11, 4
	tier := &countingTier{out: map[*fakeBox]bool{}}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, ReapInterval: time.Hour,
		Pools: []sandbox.PoolConfig{{Tier: "fake", Size: size, Refill: refill}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFull := func(stage string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for tier.outstanding() < size && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		// Give an overfill the chance to show.
		time.Sleep(20 * time.Millisecond)
		if n := tier.outstanding(); n != size {
			t.Fatalf("%s: the pool holds %d prepared sandboxes, want %d", stage, n, size)
		}
	}
	waitFull("first fill")
	var wg sync.WaitGroup
	var created atomic.Int32
	for i := range 40 {
		wg.Go(func() {
			id := fmt.Sprintf("c%d", i)
			if _, err := m.Create(context.Background(), id, sandbox.Spec{Tier: "fake"}); err != nil {
				return // a cold prepare may fail on purpose
			}
			created.Add(1)
			if err := m.Delete(context.Background(), id); err != nil {
				t.Errorf("delete %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	if created.Load() == 0 {
		t.Fatal("no create succeeded")
	}
	waitFull("refill after claims")
	if got := tier.maxRunning.Load(); got > refill || got < 2 {
		t.Errorf("%d pool prepares ran at once, want 2..%d", got, refill)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tier.outstanding(); n != 0 {
		t.Errorf("%d prepared sandboxes neither activated nor discarded after Close", n)
	}
}

// TestPoolSizeForMemoryClass: a pool asked for beyond a quarter of the
// available memory is cut down to it (to none on a tiny host), an unknown
// amount of memory keeps the old bound, and nothing is made of a zero or
// negative size.
func TestPoolSizeForMemoryClass(t *testing.T) {
	const per = sandbox.PooledSandboxBytes
	for _, tc := range []struct {
		want  int
		avail uint64
		got   int
	}{
		{100, 24 << 30, 100},
		{1024, 4 << 30, 128},
		{1 << 30, 1 << 62, 1 << 30},
		{10, per, 0},
		{10, 0, 10},
		{500, 0, 64},
		{0, 24 << 30, 0},
		{-5, 24 << 30, 0},
	} {
		if got := sandbox.PoolSizeForMemory(tc.want, tc.avail, per); got != tc.got {
			t.Errorf("PoolSizeForMemory(%d, %d, %d) = %d, want %d", tc.want, tc.avail, per, got, tc.got)
		}
	}
}

// gatedTier is a fakeTier whose pool prepares after the first wait for
// gate (an error fails them); cold counts the creates' own prepares.
type gatedTier struct {
	fakeTier
	pool, cold atomic.Int32
	started    chan struct{} // one token per gated prepare
	gate       chan error
}

func (t *gatedTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	if !sandbox.IsForPool(ctx) {
		t.cold.Add(1)
		return t.fakeTier.Prepare(ctx, tmpl)
	}
	if t.pool.Add(1) > 1 {
		t.started <- struct{}{}
		select {
		case err := <-t.gate:
			if err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return t.fakeTier.Prepare(ctx, tmpl)
}

// TestPoolClaimWaitsForRefillClass: a create that finds the pool empty
// while its refill is under way takes that sandbox when it lands instead
// of preparing a cold one beside it; when that refill fails, the create
// prepares its own at once (it does not wait out its bound), and a
// Manager that closes ends the wait.
func TestPoolClaimWaitsForRefillClass(t *testing.T) {
	// A wait bound far beyond the test: only the failed refill may end it.
	defer sandbox.SetClaimWaitMin(time.Hour)()
	tier := &gatedTier{started: make(chan struct{}, 16), gate: make(chan error)}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, ReapInterval: time.Hour,
		Pools: []sandbox.PoolConfig{{Tier: "fake", Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); tier.pool.Load() < 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the first prepare lands in the pool
	ctx := context.Background()
	if _, err := m.Create(ctx, "a", sandbox.Spec{Tier: "fake"}); err != nil {
		t.Fatal(err)
	}
	cold := tier.cold.Load()
	create := func(id string) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := m.Create(ctx, id, sandbox.Spec{Tier: "fake"})
			done <- err
		}()
		return done
	}
	<-tier.started // the refill after "a" is under way
	done := create("b")
	time.Sleep(50 * time.Millisecond) // "b" finds the pool empty (the old code prepared a cold one here)
	tier.gate <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := tier.cold.Load() - cold; got != 0 {
		t.Fatalf("a create beside a refill under way prepared %d cold sandboxes, want 0 (it takes the refill's)", got)
	}
	<-tier.started // the refill after "b"
	done = create("c")
	time.Sleep(50 * time.Millisecond)
	tier.gate <- errors.New("refill failed (on purpose)")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("create after a failed refill: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a speed check
		t.Fatal("the create still waits for a refill that failed")
	}
	if got := tier.cold.Load() - cold; got != 1 {
		t.Errorf("after the refill failed the create prepared %d cold sandboxes, want 1", got)
	}
	// The next refill is under way: a Manager that closes ends a wait.
	<-tier.started
	done = create("d")
	time.Sleep(50 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }() // waits for the refill, still gated
	select {
	case <-done: // created cold or refused as closed: either way not stuck
	case <-time.After(30 * time.Second):
		t.Fatal("a create still waits for a refill after the Manager closed")
	}
	close(tier.gate) // the refill ends, and with it Close
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestPoolRefillWaitsWhileReadyClass: a claim that leaves a sandbox ready
// in the pool does not start a refill at once (it would compete with the
// claimed sandbox's first command); a claim that empties the pool does;
// a refill still due when the Manager closes does not hold Close up.
func TestPoolRefillWaitsWhileReadyClass(t *testing.T) {
	defer sandbox.SetRefillDelay(time.Hour)()
	tier := &poolCountTier{}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, ReapInterval: time.Hour,
		Pools: []sandbox.PoolConfig{{Tier: "fake", Size: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitPrepares := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); tier.pooled.Load() < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d pool prepares, want %d", tier.pooled.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitPrepares(2)
	if _, err := m.Create(t.Context(), "a", sandbox.Spec{Tier: "fake"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // time enough for a refill started at once
	if n := tier.pooled.Load(); n != 2 {
		t.Fatalf("a claim that left one ready refilled at once (%d prepares)", n)
	}
	if _, err := m.Create(t.Context(), "b", sandbox.Spec{Tier: "fake"}); err != nil {
		t.Fatal(err)
	}
	waitPrepares(4) // emptied: refilled at once, to full
	if c := tier.cold.Load(); c != 0 {
		t.Errorf("%d cold prepares, want every create from the pool", c)
	}
	if _, err := m.Create(t.Context(), "c", sandbox.Spec{Tier: "fake"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for a refill due in an hour")
	}
}

// poolCountTier is a fakeTier that counts its pool prepares and the
// creates' own (cold) ones.
type poolCountTier struct {
	fakeTier
	pooled, cold atomic.Int32
}

func (t *poolCountTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	if sandbox.IsForPool(ctx) {
		t.pooled.Add(1)
	} else {
		t.cold.Add(1)
	}
	return t.fakeTier.Prepare(ctx, tmpl)
}

// TestPoolRefillKeepsUpWithLoopClass: a claim that leaves the pool's last
// sandbox refills at once when claims come faster than the refill delay
// (a create → exec → delete loop would otherwise take that sandbox before
// the refill starts, empty the pool and wait for a prepare under way on
// every other create), waits when they come slower, and waits while
// several are ready whatever the pace; the pool never holds more than
// its size, and no create prepares a cold sandbox.
func TestPoolRefillKeepsUpWithLoopClass(t *testing.T) {
	defer sandbox.SetRefillDelay(time.Hour)()
	var clock atomic.Int64 // nanoseconds past base
	base := time.Now()
	defer sandbox.SetPoolClock(func() time.Time { return base.Add(time.Duration(clock.Load())) })()
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	tier := &poolCountTier{}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, ReapInterval: time.Hour,
		Pools: []sandbox.PoolConfig{{Tier: "fake", Size: 3, Refill: 1}}}) // one preparer: "at rest" is exact
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	waitFull := func(prepares int32) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
			ready, _ := m.PoolReady("fake", "")
			if n := tier.pooled.Load(); n == prepares && m.PoolAtRest("fake") {
				return
			} else if n > prepares || time.Now().After(deadline) {
				t.Fatalf("%d pool prepares (%d ready), want %d and full", n, ready, prepares)
			}
		}
	}
	noRefill := func(prepares int32, what string) {
		t.Helper()
		time.Sleep(50 * time.Millisecond) // time enough for a refill started at once
		if n := tier.pooled.Load(); n != prepares {
			t.Fatalf("%s: refilled at once (%d prepares, want %d)", what, n, prepares)
		}
	}
	create := func(id string) {
		t.Helper()
		if _, err := m.Create(t.Context(), id, sandbox.Spec{Tier: "fake"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFull(3)
	create("a") // the first claim: no pace known, two left
	noRefill(3, "first claim")
	advance(time.Millisecond)
	create("b") // fast, but two were ready before it: one is left now
	waitFull(5) // refilled at once, to full (the old code waited an hour)
	advance(time.Millisecond)
	create("c") // fast, two left: several ready, the delay is kept
	noRefill(5, "fast claim leaving two")
	advance(2 * time.Hour)
	create("d") // slow pace, one left: the delay is kept
	noRefill(5, "slow claim leaving one")
	advance(time.Millisecond)
	create("e") // empties the pool: at once, whatever the pace
	waitFull(8)
	// Loop pace from a full pool: each claim leaving one refills at once,
	// and only to full (waitFull fails on a prepare too many).
	for i := range 4 {
		advance(time.Millisecond)
		create(fmt.Sprintf("loop-%d-x", i)) // leaves two
		advance(time.Millisecond)
		create(fmt.Sprintf("loop-%d-y", i)) // leaves one: refill
		waitFull(8 + 2*int32(i+1))
	}
	if c := tier.cold.Load(); c != 0 {
		t.Errorf("%d cold prepares, want every create from the pool", c)
	}
}
