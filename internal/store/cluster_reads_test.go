package store_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// TestClusterReadsOwnWritesClass: on a replicated bucket, a read after an
// acknowledged write returns that write (reads are answered by the stream
// leader, not by a replica that may lag), whichever member reads: the
// writer itself or another, under concurrent load on several keys, on two
// buckets opened by every member.
func TestClusterReadsOwnWritesClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ss := storetest.OpenCluster(t, storetest.NewCA(t, "cluster.test"), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, bucket := range []string{"reads_a", "reads_b"} {
		kvs := make([]store.KV, len(ss))
		for i, s := range ss {
			var err error
			if kvs[i], err = s.KV(ctx, bucket, store.KVOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var stale, total atomic.Int64
		var wg sync.WaitGroup
		for g := range 12 {
			wg.Go(func() {
				key := fmt.Sprintf("k%d", g)
				for i := range 60 {
					w, r := kvs[g%3], kvs[(g+i)%3] // the writer itself, then the others in turn
					v := []byte(strconv.Itoa(i))
					if _, err := w.Put(ctx, key, v); err != nil {
						t.Error(err)
						return
					}
					e, err := r.Get(ctx, key)
					if err != nil {
						t.Error(err)
						return
					}
					total.Add(1)
					if string(e.Value) != string(v) {
						stale.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if stale.Load() > 0 {
			t.Errorf("bucket %s: %d of %d reads after an acknowledged write returned an older value", bucket, stale.Load(), total.Load())
		}
	}
}

// TestClusterReadsOwnBlobsClass: a blob stored through one member is read
// back at once through every member, never "not found" or an older
// content (object stores read their meta records from the stream leader,
// not any replica).
func TestClusterReadsOwnBlobsClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ss := storetest.OpenCluster(t, storetest.NewCA(t, "cluster.test"), 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bs := make([]store.Blobs, len(ss))
	for i, s := range ss {
		var err error
		if bs[i], err = s.Blobs(ctx, "reads_blobs"); err != nil {
			t.Fatal(err)
		}
	}
	var bad, total atomic.Int64
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 30 {
				name := fmt.Sprintf("b%d-%d", g, i%5) // new names and overwrites
				w, r := bs[g%3], bs[(g+i+1)%3]
				v := []byte(fmt.Sprintf("%d/%d", g, i))
				if err := w.Put(ctx, name, v); err != nil {
					t.Error(err)
					return
				}
				got, err := r.Get(ctx, name)
				total.Add(1)
				if err != nil || string(got) != string(v) {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d reads of a blob just stored were missing or older", bad.Load(), total.Load())
	}
}
