package store_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// unansweredWait is less than the client's JetStream API timeout (5 s):
// an open that waits on a request nobody answers fails within it.
const unansweredWait = 4 * time.Second

// TestClusterConcurrentOpenClass: every member of a fresh cluster opens
// the same buckets, logs and object stores at the same moment (as every
// member of a cluster starting at once does). JetStream answers only one
// of two equal creates of one stream, and no stream info of a stream
// whose first leader is not elected yet; before the fix each such request
// cost the client's full 5 s API timeout, bucket after bucket, and a
// fresh three-member daemon cluster took longer to start than its callers
// waited. Each open here must succeed within less than that timeout.
func TestClusterConcurrentOpenClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ca := storetest.NewCA(t, "cluster.test")
	ss := storetest.OpenCluster(t, ca, 3)
	opens := []struct {
		kind string
		open func(ctx context.Context, s *store.Store, name string) error
	}{
		{"bucket", func(ctx context.Context, s *store.Store, name string) error {
			_, err := s.KV(ctx, name, store.KVOptions{History: 2})
			return err
		}},
		{"log", func(ctx context.Context, s *store.Store, name string) error {
			_, err := s.Log(ctx, name, store.LogOptions{Subjects: []string{name + ".>"}})
			return err
		}},
		{"blobs", func(ctx context.Context, s *store.Store, name string) error {
			_, err := s.Blobs(ctx, name)
			return err
		}},
	}
	for round := range 3 {
		for _, o := range opens {
			name := o.kind + strconv.Itoa(round)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, s := range ss {
				wg.Go(func() {
					<-start
					ctx, cancel := context.WithTimeout(context.Background(), unansweredWait)
					defer cancel()
					if err := o.open(ctx, s, name); err != nil {
						t.Errorf("member %d opening %s %s with the others: %v", i, o.kind, name, err)
					}
				})
			}
			close(start)
			wg.Wait()
		}
	}
}

// TestFreeAddrsOutsideEphemeralClass: the ports FreeAddrs reserves for
// servers a test starts later are never ones the kernel hands out to
// outgoing connections or to listeners on port 0 in the meantime (a
// member whose route port another connection took could not start).
func TestFreeAddrsOutsideEphemeralClass(t *testing.T) {
	lo, hi := storetest.EphemeralPorts()
	for _, a := range storetest.FreeAddrs(t, 20) {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port >= lo && port <= hi {
			t.Errorf("FreeAddrs gave %s, in the ephemeral range %d-%d", a, lo, hi)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Errorf("FreeAddrs gave %s, not free: %v", a, err)
			continue
		}
		l.Close()
	}
	if seen := fmt.Sprint(storetest.FreeAddrs(t, 2)); seen == fmt.Sprint(storetest.FreeAddrs(t, 2)) {
		t.Errorf("FreeAddrs gave the same ports twice in a row: %s", seen)
	}
}
