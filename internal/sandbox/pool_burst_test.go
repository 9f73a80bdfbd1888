package sandbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// slowActTier is a poolCountTier whose sandboxes' activations wait for a
// token on release, or, for ids starting with "stuck", until their
// context ends (started gets one token per activation begun).
type slowActTier struct {
	poolCountTier
	started chan struct{}
	release chan struct{}
}

func (t *slowActTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	pr, err := t.poolCountTier.Prepare(ctx, tmpl)
	if err != nil {
		return nil, err
	}
	return &slowActBox{fakeBox: pr.(*fakeBox), t: t}, nil
}

type slowActBox struct {
	*fakeBox
	t *slowActTier
}

func (b *slowActBox) Activate(ctx context.Context, id string, s sandbox.Spec) (sandbox.Sandbox, error) {
	b.t.started <- struct{}{}
	if strings.HasPrefix(id, "stuck") { // until its create gives up
		<-ctx.Done()
		return nil, ctx.Err()
	}
	select {
	case <-b.t.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.fakeBox.Activate(ctx, id, s)
}

// TestPoolRefillAfterBurstClass: creates of two owners drain the pool at
// once and activate what they took; one that finishes while the others
// still activate does not start a refill beside them, the last one to
// finish refills the pool at once and only to full, and no create
// prepares a cold sandbox.
func TestPoolRefillAfterBurstClass(t *testing.T) {
	defer sandbox.SetRefillDelay(time.Hour)()
	defer sandbox.SetBurstRefillDelay(time.Hour)()
	const size = 4
	tier := &slowActTier{started: make(chan struct{}, size), release: make(chan struct{})}
	m := startBurstPool(t, tier, size)
	defer m.Close()
	var wg sync.WaitGroup
	for i := range size {
		wg.Go(func() {
			owner := []string{"alice", "bob"}[i%2]
			if _, err := m.Create(t.Context(), fmt.Sprintf("%s-%d", owner, i), sandbox.Spec{Tier: "fake", Labels: map[string]string{"owner": owner}}); err != nil {
				t.Error(err)
			}
		})
	}
	for range size {
		<-tier.started // every create has claimed its sandbox: the pool is empty
	}
	for i := range size - 1 {
		tier.release <- struct{}{}
		time.Sleep(20 * time.Millisecond) // time enough for a refill started at once
		if n := tier.pooled.Load(); n != size {
			t.Errorf("after %d of %d creates finished: %d pool prepares, want %d (no refill beside the burst)", i+1, size, n, size)
			for range size - 1 - i {
				tier.release <- struct{}{}
			}
			wg.Wait()
			return
		}
	}
	tier.release <- struct{}{}
	wg.Wait()
	waitRest(t, m, &tier.poolCountTier, 2*size) // the last one refilled at once, to full
	if c := tier.cold.Load(); c != 0 {
		t.Errorf("%d cold prepares, want every create from the pool", c)
	}
}

// TestPoolRefillBesideStuckActivationClass: an activation that never ends
// (a stuck sandbox) does not keep the pool from refilling: another
// create's finish refills it after burstRefillDelay, so the creates that
// follow still come from the pool.
func TestPoolRefillBesideStuckActivationClass(t *testing.T) {
	defer sandbox.SetRefillDelay(time.Hour)()
	defer sandbox.SetBurstRefillDelay(10 * time.Millisecond)()
	const size = 2
	tier := &slowActTier{started: make(chan struct{}, 8), release: make(chan struct{})}
	m := startBurstPool(t, tier, size)
	stuckCtx, unstick := context.WithCancel(t.Context())
	stuck := make(chan error, 1)
	go func() {
		_, err := m.Create(stuckCtx, "stuck-mallory", sandbox.Spec{Tier: "fake"})
		stuck <- err
	}()
	<-tier.started
	done := make(chan error, 1)
	go func() {
		_, err := m.Create(t.Context(), "alice", sandbox.Spec{Tier: "fake"})
		done <- err
	}()
	<-tier.started
	tier.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitRest(t, m, &tier.poolCountTier, 2*size) // refilled beside the stuck one
	unstick()
	<-stuck
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitRest waits until the pool of the fake tier is full and at rest
// after exactly prepares pool prepares.
func waitRest(t *testing.T, m *sandbox.Manager, tier *poolCountTier, prepares int32) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		if n := tier.pooled.Load(); n == prepares && m.PoolAtRest("fake") {
			return
		} else if n > prepares || time.Now().After(deadline) {
			ready, _ := m.PoolReady("fake", "")
			t.Fatalf("%d pool prepares (%d ready), want %d and full", n, ready, prepares)
		}
	}
}

// startBurstPool starts a manager whose one pool of size sandboxes of
// tier refills one at a time, and waits for the pool to be full.
func startBurstPool(t *testing.T, tier *slowActTier, size int) *sandbox.Manager {
	t.Helper()
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, ReapInterval: time.Hour,
		Pools: []sandbox.PoolConfig{{Tier: "fake", Size: size, Refill: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitRest(t, m, &tier.poolCountTier, int32(size))
	return m
}
