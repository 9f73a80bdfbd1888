package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// TestWatchConsumerDiesClass: a watch whose consumer lived on a member
// that died without leading the stream (so nothing is elected and no
// advisory resumes it) must still deliver the next write made through its
// own store, by resuming once that write does not come back. Before, it
// delivered nothing until the client library missed two of the
// consumer's 5 s heartbeats, and a cluster member kept routing a dead
// member's sessions to it for that long.
func TestWatchConsumerDiesClass(t *testing.T) {
	ctx, ss, kvs := openClusterBucket(t)
	byName := map[string]int{}
	for i, s := range ss {
		byName[s.ServerName()] = i
	}
	leader, _, err := ss[0].BucketPlacement(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	// One watch, through a member that does not lead the stream; its
	// consumer must live on the third member (the victim).
	var got struct {
		mu   sync.Mutex
		keys []string
	}
	victim, watcher := -1, -1
	// JetStream places each new consumer on a member of the stream's group
	// at random; try again until one lands away from its watcher.
	for attempt := range 60 {
		i := attempt % len(ss)
		if ss[i].ServerName() == leader {
			continue
		}
		wctx, stop := context.WithCancel(ctx)
		if _, err := kvs[i].Watch(wctx, "", func(ev store.WatchEvent) {
			got.mu.Lock()
			got.keys = append(got.keys, ev.Key)
			got.mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		_, hosts, err := ss[i].BucketPlacement(ctx, "w")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stream leader %s; watch through %s has its consumer on %v", leader, ss[i].ServerName(), hosts)
		// The victim must not lead the stream, so that its death elects
		// nothing (the case no advisory covers).
		if len(hosts) == 1 && byName[hosts[0]] != i && hosts[0] != leader {
			victim, watcher = byName[hosts[0]], i
			defer stop()
			break
		}
		stop()
		waitConsumers(ctx, t, ss[i], 0)
	}
	if victim < 0 {
		t.Fatal("in 60 attempts no watch's consumer lived on the member that neither watches nor leads; the placement this test relies on changed")
	}
	before := ss[watcher].WatchStalls()
	ss[victim].Close()
	start := time.Now()
	// Write through the watcher's own store until the write is taken (the
	// survivors may need a moment), then wait for the watch to deliver it.
	for {
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := kvs[watcher].Put(wctx, "after.kill", []byte("v"))
		wcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("write after the kill: %v", err)
		}
	}
	for {
		got.mu.Lock()
		ok := slices.Contains(got.keys, "after.kill")
		got.mu.Unlock()
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the watch never delivered the write made after its consumer's member died")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("delivered %v after the kill", time.Since(start).Round(time.Millisecond))
	if ss[watcher].WatchStalls() == before {
		t.Fatal("the watch did not resume when the store's own write failed to come back (it recovered only through the client's heartbeats, or its consumer did not die)")
	}
}

// waitConsumers waits until bucket w's stream has n consumers.
func waitConsumers(ctx context.Context, t *testing.T, s *store.Store, n int) {
	t.Helper()
	for {
		_, hosts, err := s.BucketPlacement(ctx, "w")
		if err == nil && len(hosts) == n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("consumers of w: %v, want %d (%v)", hosts, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchResumeWaitsForNoStopClass: a watch resumed (here after its
// stream elected a new leader) must deliver again without waiting for its
// old watcher to stop. Stopping deletes the old consumer with a request
// that, when the consumer lived on a member that died, waits out the
// client's 5 s timeout; a cluster member whose watch waited for it saw no
// lease change for those seconds after a failover. Here every stop is held
// until the test ends: before, the resumed watch never delivered.
func TestWatchResumeWaitsForNoStopClass(t *testing.T) {
	ctx, ss, kvs := openClusterBucket(t)
	held, release := ss[0].HoldWatchStops()
	defer release()
	got := make(chan string, 16)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	if _, err := kvs[0].Watch(wctx, "", func(ev store.WatchEvent) { got <- ev.Key }); err != nil {
		t.Fatal(err)
	}
	leader, _, err := ss[0].BucketPlacement(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if s.ServerName() == leader {
			if n, err := s.StepDownLeaders(ctx); err != nil || n == 0 {
				t.Fatalf("step down on %s: %d streams, %v", leader, n, err)
			}
		}
	}
	// The election resumes the watch; its old watcher's stop is held.
	for held() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the stream's new leader did not resume the watch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		if _, err := kvs[0].Put(ctx, "after", []byte("v")); err != nil && ctx.Err() != nil {
			t.Fatalf("write after the election: %v", err)
		}
		select {
		case k := <-got:
			if k == "after" {
				return
			}
		case <-time.After(time.Second): // not delivered yet: write again
		case <-ctx.Done():
			t.Fatal("the resumed watch delivered nothing while its old watcher's stop was pending")
		}
	}
}

// openClusterBucket starts a three-member cluster (skipped with -short)
// and opens bucket "w" through each member; ctx bounds the test.
func openClusterBucket(t *testing.T) (context.Context, []*store.Store, []store.KV) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ss := storetest.OpenCluster(t, storetest.NewCA(t, "cluster.test"), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	kvs := make([]store.KV, len(ss))
	for i, s := range ss {
		kv, err := s.KV(ctx, "w", store.KVOptions{})
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		kvs[i] = kv
	}
	return ctx, ss, kvs
}
