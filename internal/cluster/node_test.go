package cluster_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// TestClusterListenersRequireMutualTLSClass: a route or peer listener off
// loopback is refused unless its TLS requires and verifies the peer's
// certificate; on loopback, and with the node's peer TLS, it is accepted.
func TestClusterListenersRequireMutualTLSClass(t *testing.T) {
	ca, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: "agentcloud.local"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := cluster.PeerTLS(ca, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"cluster_listen", "peer_listen"} {
		for _, c := range []*tls.Config{nil, {}, {ClientAuth: tls.RequestClientCert}, {ClientAuth: tls.RequireAnyClientCert},
			{ClientAuth: tls.VerifyClientCertIfGiven}} {
			if err := cluster.RequireMutualTLS(field, "10.1.2.3:6222", c); err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("%s off loopback with %+v: %v", field, c, err)
			}
			if err := cluster.RequireMutualTLS(field, "127.0.0.1:6222", c); err != nil {
				t.Errorf("%s on loopback: %v", field, err)
			}
		}
		if err := cluster.RequireMutualTLS(field, "10.1.2.3:6222", peer); err != nil {
			t.Errorf("%s with the node's peer TLS: %v", field, err)
		}
	}
	// A node refuses to listen for peers off loopback without mutual TLS.
	if _, err := cluster.Listen(cluster.NodeConfig{Node: "n1", PeerAddr: "10.1.2.3:0"}); err == nil || !strings.Contains(err.Error(), "peer_listen") {
		t.Fatalf("peer listener off loopback without TLS: %v", err)
	}
	// A wildcard peer address names no member; the default is the
	// cluster listener's host.
	for _, addr := range []string{"0.0.0.0:7000", "[::]:7000", ":7000"} {
		if _, err := cluster.PeerListenAddr(addr, ""); err == nil || !strings.Contains(err.Error(), "peer_listen") {
			t.Errorf("wildcard peer_listen %s: %v", addr, err)
		}
	}
	if got, err := cluster.PeerListenAddr("", "127.0.0.2:6222"); err != nil || got != "127.0.0.2:0" {
		t.Fatalf("default peer listener: %q, %v", got, err)
	}
}
