package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// TestStepDownLeadersClass: a member that steps down leads no bucket
// afterwards, whichever buckets it led; every bucket keeps answering
// writes through every member right after, without waiting out an
// election; the member may step down again (nothing to do), and a
// single-node store has nothing to hand off.
func TestStepDownLeadersClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ca := storetest.NewCA(t, "cluster.test")
	ss := storetest.OpenCluster(t, ca, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const buckets = 6
	kvs := make([][]store.KV, len(ss))
	for i, s := range ss {
		for b := range buckets {
			kv, err := s.KV(ctx, fmt.Sprintf("b%d", b), store.KVOptions{})
			if err != nil {
				t.Fatalf("member %d bucket %d: %v", i, b, err)
			}
			kvs[i] = append(kvs[i], kv)
		}
	}
	for i, s := range ss {
		n, err := s.StepDownLeaders(ctx)
		if err != nil {
			t.Fatalf("member %d: step down: %v", i, err)
		}
		if n2, err := s.StepDownLeaders(ctx); err != nil || n2 != 0 {
			t.Fatalf("member %d: second step down handed off %d: %v", i, n2, err)
		}
		t.Logf("member %d handed off %d streams", i, n)
		// Every bucket takes a write through every member at once.
		for j := range ss {
			for b, kv := range kvs[j] {
				wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := kv.Put(wctx, fmt.Sprintf("k%d", i), []byte("v"))
				wcancel()
				if err != nil {
					t.Fatalf("after member %d stepped down, bucket %d through member %d: %v", i, b, j, err)
				}
			}
		}
	}
	single, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if n, err := single.StepDownLeaders(ctx); n != 0 || err != nil {
		t.Fatalf("single node: %d %v", n, err)
	}
}
