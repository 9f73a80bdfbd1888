package store_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// TestFencedWriteClass: a fenced put or delete is accepted only while its
// fence key is at the given revision, checked by the store in the same
// operation, on a replicated bucket of a three-member cluster: once
// another member rewrites the fence, no member can write with the old
// revision (put, delete, new key, absent fence); a write racing the fence
// rewrite is either ordered before it or refused; malformed fences and
// oversized values are refused with the store's errors.
func TestFencedWriteClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ca := storetest.NewCA(t, "fence.test")
	ss := storetest.OpenCluster(t, ca, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	kvs := make([]store.KV, len(ss))
	for i, s := range ss {
		var err error
		if kvs[i], err = s.KV(ctx, "fenced", store.KVOptions{MaxValueSize: 1024}); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	old, newer, other := kvs[0], kvs[1], kvs[2]

	// An absent fence is at revision 0.
	if _, err := old.PutFenced(ctx, "v.a", []byte("1"), store.Fence{Key: "f.a", Revision: 0}); err != nil {
		t.Fatalf("put under an absent fence: %v", err)
	}
	r1, err := old.Put(ctx, "f.a", []byte("epoch 1"))
	if err != nil {
		t.Fatal(err)
	}
	f1 := store.Fence{Key: "f.a", Revision: r1}
	if _, err := old.PutFenced(ctx, "v.a", []byte("2"), store.Fence{Key: "f.a", Revision: 0}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("put at revision 0 of an existing fence: %v, want ErrFenced", err)
	}
	for i, kv := range kvs {
		if _, err := kv.PutFenced(ctx, "v.a", []byte("3"), f1); err != nil {
			t.Fatalf("member %d put at the current fence: %v", i, err)
		}
	}
	if err := other.DeleteFenced(ctx, "v.gone", f1); err != nil {
		t.Fatalf("delete of an absent key at the current fence: %v", err)
	}

	// Another member takes over: it rewrites the fence.
	if _, err := newer.Update(ctx, "f.a", []byte("epoch 2"), r1); err != nil {
		t.Fatal(err)
	}
	for i, kv := range kvs {
		if _, err := kv.PutFenced(ctx, "v.a", []byte("stale"), f1); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("member %d put at the old fence: %v, want ErrFenced", i, err)
		}
		if _, err := kv.PutFenced(ctx, "v.new", []byte("stale"), f1); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("member %d put of a new key at the old fence: %v, want ErrFenced", i, err)
		}
		if err := kv.DeleteFenced(ctx, "v.a", f1); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("member %d delete at the old fence: %v, want ErrFenced", i, err)
		}
	}
	for i, kv := range kvs {
		if e, err := kv.Get(ctx, "v.a"); err != nil || string(e.Value) != "3" {
			t.Fatalf("member %d reads %q %v, want the last write before the fence moved", i, e.Value, err)
		}
		if _, err := kv.Get(ctx, "v.new"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("member %d: a fenced-out write of a new key landed: %v", i, err)
		}
	}

	// Malformed fences and oversized values.
	for _, key := range []string{"", "f.*", "f.>", "f..a", strings.Repeat("k", 4096)} {
		if _, err := old.PutFenced(ctx, "v.a", []byte("x"), store.Fence{Key: key}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("fence key %.20q: %v, want ErrInvalid", key, err)
		}
	}
	if _, err := old.PutFenced(ctx, "v.*", []byte("x"), f1); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("wildcard key: %v, want ErrInvalid", err)
	}
	e2, _ := newer.Get(ctx, "f.a")
	if _, err := newer.PutFenced(ctx, "v.a", bytes.Repeat([]byte("x"), 4096), store.Fence{Key: "f.a", Revision: e2.Revision}); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized value: %v, want ErrTooLarge", err)
	}

	// A race: one member writes under the fence as fast as it can while
	// another moves the fence. Every accepted write is ordered before the
	// fence moved; every one after is refused.
	fr, _ := newer.Get(ctx, "f.a")
	fence := store.Fence{Key: "f.a", Revision: fr.Revision}
	var moved atomic.Uint64
	var accepted []uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 400; i++ {
			rev, err := old.PutFenced(ctx, "v.race", []byte("w"), fence)
			if errors.Is(err, store.ErrFenced) {
				if moved.Load() == 0 {
					// Refused before the mover was acknowledged: the
					// fence write was ordered first all the same.
					time.Sleep(time.Millisecond)
				}
				continue
			}
			if err != nil {
				t.Error(err)
				return
			}
			accepted = append(accepted, rev)
		}
	})
	time.Sleep(20 * time.Millisecond)
	// While a fenced write is in flight the stream's leader refuses a
	// compare-and-set of its fence key as a conflict: the mover retries
	// while the fence is unchanged.
	var mrev uint64
	for {
		mrev, err = other.Update(ctx, "f.a", []byte("epoch 3"), fr.Revision)
		if err == nil {
			break
		}
		if cur, gerr := other.Get(ctx, "f.a"); !errors.Is(err, store.ErrConflict) || gerr != nil || cur.Revision != fr.Revision {
			t.Fatalf("moving the fence: %v", err)
		}
	}
	moved.Store(mrev)
	wg.Wait()
	for _, rev := range accepted {
		if rev > mrev {
			t.Fatalf("a fenced write was accepted at revision %d, after the fence moved at %d", rev, mrev)
		}
	}
	if _, err := old.PutFenced(ctx, "v.race", []byte("late"), fence); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("after the race: %v, want ErrFenced", err)
	}
	t.Logf("race: %d writes accepted before the fence moved at revision %d", len(accepted), mrev)
}
