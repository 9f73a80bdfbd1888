package store_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// TestClusterReplicatesAndCountsExactly: three members over mutual-TLS
// routes share replicated buckets; compare-and-set increments spread over
// all members give exactly their number; after one member stops, the other
// two keep every acknowledged write and keep accepting new ones.
func TestClusterReplicatesAndCountsExactly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ca := storetest.NewCA(t, "cluster.test")
	ss := storetest.OpenCluster(t, ca, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kvs := make([]store.KV, len(ss))
	for i, s := range ss {
		if p := s.ClusterPeers(); len(p) != 2 {
			t.Errorf("member %d has routes to %v, want 2 peers", i, p)
		}
		var err error
		if kvs[i], err = s.KV(ctx, "counter", store.KVOptions{}); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	if _, err := kvs[0].Create(ctx, "n", []byte("0")); err != nil {
		t.Fatal(err)
	}
	const perMember = 15
	var wg sync.WaitGroup
	for _, kv := range kvs {
		for range perMember {
			wg.Go(func() {
				for {
					e, err := kv.Get(ctx, "n")
					if err != nil {
						t.Error(err)
						return
					}
					v, _ := strconv.Atoi(string(e.Value))
					if _, err := kv.Update(ctx, "n", []byte(strconv.Itoa(v+1)), e.Revision); err == nil {
						return
					} else if !errors.Is(err, store.ErrConflict) {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	want := strconv.Itoa(perMember * len(kvs))
	for i, kv := range kvs {
		e, err := kv.Get(ctx, "n")
		if err != nil || string(e.Value) != want {
			t.Fatalf("member %d reads %q (%v), want %s", i, e.Value, err, want)
		}
	}

	// Stop member 2; acknowledged writes stay, and the others go on.
	var acked []string
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		if _, err := kvs[i%3].Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, k)
	}
	stopped := time.Now()
	ss[2].Close()
	// While the bucket's stream elects a new leader the store answers
	// ErrUnavailable (a 503 to clients), never a wrong value.
	deadline := time.Now().Add(60 * time.Second) // an election on a loaded 2-core box
	for {
		_, err := kvs[0].Put(ctx, "after", []byte("1"))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("two of three members do not accept writes: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("writes accepted again %v after a member stopped", time.Since(stopped).Round(time.Millisecond))
	for _, kv := range kvs[:2] {
		for _, k := range acked {
			e, err := kv.Get(ctx, k)
			for errors.Is(err, store.ErrUnavailable) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // a 503 to a client, who retries
				e, err = kv.Get(ctx, k)
			}
			if err != nil || string(e.Value) != k {
				t.Fatalf("after a member stopped: %s = %q, %v", k, e.Value, err)
			}
		}
	}
	if e, err := kvs[1].Get(ctx, "after"); err != nil || string(e.Value) != "1" {
		t.Fatalf("write after a member stopped not replicated: %q, %v", e.Value, err)
	}
}

// TestClusterRouteAuthClass: a member never accepts routes without mutual
// TLS, and a server whose certificate is not a node SVID of the cluster's
// trust domain cannot join.
func TestClusterRouteAuthClass(t *testing.T) {
	ca := storetest.NewCA(t, "cluster.test")
	good := storetest.PeerTLS(t, ca, "n0")
	noClientAuth := good.Clone()
	noClientAuth.ClientAuth = tls.NoClientCert
	unverified := good.Clone()
	unverified.VerifyPeerCertificate = nil
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		o    store.ClusterOptions
	}{
		{"no TLS", store.ClusterOptions{Name: "c", Node: "n0", Listen: "127.0.0.1:0"}},
		{"TLS without client certificates", store.ClusterOptions{Name: "c", Node: "n0", Listen: "127.0.0.1:0", TLS: noClientAuth}},
		{"client certificate not verified", store.ClusterOptions{Name: "c", Node: "n0", Listen: "127.0.0.1:0", TLS: unverified}},
		{"no name", store.ClusterOptions{Node: "n0", Listen: "127.0.0.1:0", TLS: good}},
		{"no node", store.ClusterOptions{Name: "c", Listen: "127.0.0.1:0", TLS: good}},
		{"credentials in a route", store.ClusterOptions{Name: "c", Node: "n0", Listen: "127.0.0.1:0", TLS: good,
			Routes: []string{"nats-route://u:p@127.0.0.1:1"}}},
		{"route scheme", store.ClusterOptions{Name: "c", Node: "n0", Listen: "127.0.0.1:0", TLS: good,
			Routes: []string{"http://127.0.0.1:1"}}},
		{"route without port", store.ClusterOptions{Name: "c", Node: "n0", Listen: "127.0.0.1:0", TLS: good,
			Routes: []string{"nats-route://127.0.0.1"}}},
	} {
		o := c.o
		s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true, Cluster: &o})
		if err == nil {
			s.Close()
			t.Errorf("%s: member started", c.name)
		}
	}
	if testing.Short() {
		return
	}

	// A stranger with a certificate from another CA (same trust domain
	// name), and a non-node SVID of the right CA, both route to a member of
	// a running cluster: neither gets a route, the member keeps its one peer.
	ss := storetest.OpenCluster(t, ca, 2)
	other := storetest.NewCA(t, "cluster.test")
	userID, err := identity.NewID(ca.TrustDomain(), identity.KindUser, "mallory")
	if err != nil {
		t.Fatal(err)
	}
	userRot, err := ca.NewRotator(userID)
	if err != nil {
		t.Fatal(err)
	}
	addrs := storetest.FreeAddrs(t, 2)
	for i, bad := range []*tls.Config{storetest.PeerTLS(t, other, "n1"), ca.PeerTLSConfig(userRot)} {
		sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := store.Open(sctx, store.Options{Dir: t.TempDir(), NoSync: true, Cluster: &store.ClusterOptions{
			Name: "test", Node: "x" + strconv.Itoa(i), Listen: addrs[i], Routes: []string{ss[0].ClusterAddr().String()}, TLS: bad}})
		scancel()
		if err == nil {
			peers := s.ClusterPeers()
			s.Close()
			t.Fatalf("stranger %d joined the cluster (routes to %v)", i, peers)
		}
		if p := ss[0].ClusterPeers(); len(p) != 1 || p[0] != "agentcloud-n1" {
			t.Fatalf("after stranger %d the member has routes to %v, want [agentcloud-n1]", i, p)
		}
	}
}
