package cluster_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/store"
)

// acquireLog records a member's Acquire calls.
type acquireLog struct {
	mu    sync.Mutex
	calls [][]int
}

func (l *acquireLog) acquire(_ context.Context, ps []int) {
	l.mu.Lock()
	l.calls = append(l.calls, slices.Clone(ps))
	l.mu.Unlock()
}

// since returns the calls after the first n and how many partitions they
// name.
func (l *acquireLog) since(n int) (calls [][]int, parts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls = slices.Clone(l.calls[n:])
	for _, c := range calls {
		parts += len(c)
	}
	return calls, parts
}

func startLogged(t *testing.T, name string, kv store.KV, log *acquireLog) *cluster.Member {
	t.Helper()
	m, err := cluster.New(cluster.Config{Node: name, Addr: name + ":7070", KV: kv, Partitions: parts,
		Heartbeat: heartbeat, TTL: ttl, Acquire: log.acquire})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAcquireBatchedClass: a member reports the partitions it takes once
// per heartbeat, all of them in one call (so a takeover reads the
// sessions' alarms once, not once per partition): at start, on a hand-off
// to a joining member, and when it takes back a leaving member's share.
// Every call names partitions sorted and distinct.
func TestAcquireBatchedClass(t *testing.T) {
	s, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	kv := bucket(t, s)
	var la, lb acquireLog
	a := startLogged(t, "node-a", kv, &la)
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	if calls, n := la.since(0); len(calls) != 1 || n != parts {
		t.Fatalf("start: %d calls naming %d partitions, want one naming all %d", len(calls), n, parts)
	}

	b := startLogged(t, "node-b", kv, &lb)
	waitFor(t, "node-b takes its share", 30*time.Second, func() bool {
		return b.OwnedCount() > 0 && a.OwnedCount()+b.OwnedCount() == parts
	})
	share := b.OwnedCount()
	if calls, n := lb.since(0); n != share || len(calls) >= share && share > 1 {
		t.Fatalf("hand-off: %d calls naming %d partitions for a share of %d", len(calls), n, share)
	}

	before, _ := la.since(0)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node-a takes everything back", 30*time.Second, func() bool { return a.OwnedCount() == parts })
	calls, n := la.since(len(before))
	if n != share || len(calls) >= share && share > 1 {
		t.Fatalf("take back: %d calls naming %d partitions for a share of %d", len(calls), n, share)
	}
	for _, l := range []*acquireLog{&la, &lb} {
		all, _ := l.since(0)
		for _, c := range all {
			if len(c) == 0 || !slices.IsSorted(c) || len(slices.Compact(slices.Clone(c))) != len(c) {
				t.Fatalf("acquire call %v: want a non-empty sorted set", c)
			}
		}
	}
}
