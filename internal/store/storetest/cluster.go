// Package storetest starts real store clusters for tests: n embedded NATS
// servers on loopback, routed to each other over mutual TLS with node
// SVIDs of one test CA, with clustered JetStream. It holds no fakes.
package storetest

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/store"
)

// FreeAddrs reserves n loopback ports and frees them for servers to take.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var ls []net.Listener
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// NewCA makes a CA for trust domain td in a temporary directory.
func NewCA(t testing.TB, td string) *identity.CA {
	t.Helper()
	ca, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: td}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// PeerTLS is the route TLS of node name, with an SVID from ca.
func PeerTLS(t testing.TB, ca *identity.CA, name string) *tls.Config {
	t.Helper()
	id, err := identity.NewID(ca.TrustDomain(), identity.KindNode, name)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := ca.NewRotator(id, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return ca.PeerTLSConfig(rot)
}

// OpenCluster starts n members named n0, n1, ... with buckets replicated
// min(n, 3) times, waits until every one has a JetStream meta leader, and
// closes them at the end of the test. Stores the test closes itself may be
// closed again.
func OpenCluster(t testing.TB, ca *identity.CA, n int) []*store.Store {
	t.Helper()
	addrs := FreeAddrs(t, n)
	stores := make([]*store.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		var routes []string
		for j, a := range addrs {
			if j != i {
				routes = append(routes, "nats-route://"+a)
			}
		}
		name := "n" + strconv.Itoa(i)
		o := store.Options{Dir: t.TempDir(), NoSync: true, Replicas: min(n, 3), Cluster: &store.ClusterOptions{
			Name: "test", Node: name, Listen: addrs[i], Routes: routes, TLS: PeerTLS(t, ca, name)}}
		wg.Go(func() { stores[i], errs[i] = store.Open(ctx, o) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, s := range stores {
				if s != nil {
					s.Close()
				}
			}
			t.Fatalf("cluster member %d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		for _, s := range stores {
			s.Close()
		}
	})
	return stores
}
