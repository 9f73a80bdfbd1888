// Package storetest starts real store clusters for tests: n embedded NATS
// servers on loopback, routed to each other over mutual TLS with node
// SVIDs of one test CA, with clustered JetStream. It holds no fakes.
package storetest

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/store"
)

// FreeAddrs picks n free loopback ports for servers the test starts
// later. They lie below the kernel's ephemeral range, so no outgoing
// connection and no listener on port 0 can take one before the server
// binds it (a cluster member whose route port was taken could not start,
// or another process took its place). Ports are not handed out twice by
// one test process.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	lo, _ := EphemeralPorts()
	first := min(10000, lo/2)
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("no free loopback port below %d", lo)
		}
		port := first + rand.IntN(lo-first)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, addr)
	}
	return out
}

// handedOut holds the ports FreeAddrs gave this process.
var handedOut sync.Map

// EphemeralPorts is the kernel's range of ports for outgoing connections
// and listeners on port 0 (Linux's default when it cannot be read).
func EphemeralPorts() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l < 2048 || h < l {
		return lo, hi
	}
	return l, h
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
