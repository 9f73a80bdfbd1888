package cluster

// A node's side of the cluster (node.go): the peer listener other members
// forward session requests to, the Forwarder in front of the node's own
// handler, and the Member once the node's API listens. Links between
// members are mutual TLS with node X.509-SVIDs of the shared CA.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// NodeHeader names, on every response of a cluster member, the member
// that served the request (a session's owner, for a forwarded one).
const NodeHeader = "Agentcloud-Node"

// NodeConfig configures a Node.
type NodeConfig struct {
	// Node is this member's node ID.
	Node string
	// PeerAddr is the peer listener's address (PeerListenAddr).
	PeerAddr string
	// PeerTLS is the links' TLS (PeerTLS).
	PeerTLS *tls.Config
	// Local serves the requests this node answers itself.
	Local http.Handler
	// ReadTimeout and WriteTimeout bound a forwarded request as the API
	// listener bounds one of its own.
	ReadTimeout, WriteTimeout time.Duration
	// Metrics registers the node's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
	// Run runs the calls other members send into sessions this one owns
	// (calls.go); nil: they are refused with 503.
	Run RunFunc
}

// Node is one daemon's part of the cluster. Until Start it owns nothing
// and answers session requests 503 with Retry-After.
type Node struct {
	cfg    NodeConfig
	member atomic.Pointer[Member]
	fwd    *Forwarder
	ln     net.Listener
	srv    *http.Server
}

// Listen opens the peer listener and builds the forwarder.
func Listen(cfg NodeConfig) (*Node, error) {
	if err := RequireMutualTLS("peer_listen", cfg.PeerAddr, cfg.PeerTLS); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("peer_listen %s: %w", cfg.PeerAddr, err)
	}
	n := &Node{cfg: cfg, ln: ln}
	local := cfg.Local
	n.fwd = &Forwarder{Node: cfg.Node, Owners: n,
		Local: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(NodeHeader, cfg.Node) // forwarded back as it is
			local.ServeHTTP(w, r)
		}),
		Transport: PeerTransport(cfg.PeerTLS)}
	if n.fwd.met, err = newMetrics(cfg.Metrics, n); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("cluster metrics: %w", err)
	}
	return n, nil
}

// Handler is what the node's API listener serves: the forwarder.
func (n *Node) Handler() http.Handler { return n.fwd }

// PeerAddr is the peer listener's address.
func (n *Node) PeerAddr() string { return n.ln.Addr().String() }

// Member is the running member, nil before Start.
func (n *Node) Member() *Member { return n.member.Load() }

// Start serves the peer listener and creates and starts the member of mc
// (its Addr is the peer listener's).
func (n *Node) Start(ctx context.Context, mc Config) error {
	peer := n.fwd.Peer()
	n.srv = &http.Server{
		// A forwarded request is authenticated by the token it carries;
		// the TLS peer is the forwarding node, never the client.
		// Calls between sessions (calls.go) are the members' own.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == peerCallPath {
				n.servePeerCall(w, r)
				return
			}
			r.TLS = nil
			peer.ServeHTTP(w, r)
		}),
		TLSConfig:         n.cfg.PeerTLS.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       n.cfg.ReadTimeout,
		WriteTimeout:      n.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are not the node's errors
	}
	go func() { _ = n.srv.ServeTLS(n.ln, "", "") }()
	mc.Addr = n.PeerAddr()
	m, err := New(mc)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	n.member.Store(m)
	return m.Start(ctx)
}

// Shutdown stops serving peers, then hands every partition off (Member
// Close).
func (n *Node) Shutdown(ctx context.Context) error {
	if n.srv != nil {
		if err := n.srv.Shutdown(ctx); err != nil {
			_ = n.srv.Close()
		}
	}
	if m := n.member.Load(); m != nil {
		return m.Close(ctx)
	}
	return nil
}

// Close closes the peer listener and the forwarder's idle links.
func (n *Node) Close() {
	_ = n.ln.Close()
	if l, ok := n.fwd.Transport.(interface{ CloseIdleConnections() }); ok {
		l.CloseIdleConnections()
	}
}

// Partition, Owned and OwnerOf make the node the forwarder's Owners: the
// member's answers once it runs, nothing owned before.
func (n *Node) Partition(agent, session string) int {
	return PartitionOf(agent, session, DefaultPartitions)
}

// Owned implements Owners.
func (n *Node) Owned(p int) (uint64, bool) {
	if m := n.member.Load(); m != nil {
		return m.Owned(p)
	}
	return 0, false
}

// OwnerOf implements Owners.
func (n *Node) OwnerOf(p int) (string, string, bool) {
	if m := n.member.Load(); m != nil {
		return m.OwnerOf(p)
	}
	return "", "", false
}

// Locate implements Owners.
func (n *Node) Locate(match func(string) bool) (string, string, bool, bool) {
	if m := n.member.Load(); m != nil {
		return m.Locate(match)
	}
	return "", "", false, false
}

// Members implements Owners: none before the member runs.
func (n *Node) Members() []MemberInfo {
	if m := n.member.Load(); m != nil {
		return m.Members()
	}
	return nil
}

// Owns reports whether this node owns the session's partition, and the
// lease's epoch (the session manager's Owner).
func (n *Node) Owns(agent, id string) (uint64, bool) {
	return n.Owned(n.Partition(agent, id))
}

// InPartition selects the sessions of partition p.
func (n *Node) InPartition(p int) func(agent, id string) bool {
	return func(agent, id string) bool { return n.Partition(agent, id) == p }
}

// InPartitions selects the sessions of the partitions ps.
func (n *Node) InPartitions(ps []int) func(agent, id string) bool {
	set := make(map[int]bool, len(ps))
	for _, p := range ps {
		set[p] = true
	}
	return func(agent, id string) bool { return set[n.Partition(agent, id)] }
}

// PeerTLS is the TLS of links between members: the node's X.509-SVID
// (spiffe://TD/node/NODE, rotated), accepting only node SVIDs of ca.
func PeerTLS(ca *identity.CA, node string) (*tls.Config, error) {
	id, err := identity.NewID(ca.TrustDomain(), identity.KindNode, node)
	if err != nil {
		return nil, fmt.Errorf("cluster: node identity: %w", err)
	}
	rot, err := ca.NewRotator(id, "localhost", node)
	if err != nil {
		return nil, fmt.Errorf("cluster: node certificate: %w", err)
	}
	return ca.PeerTLSConfig(rot), nil
}

// PeerTransport is the client side of the links between members: mutual
// TLS with c (PeerTLS), HTTP/1.1 on kept-alive connections, one per request
// in flight, up to 64 idle per member. HTTP/1.1 rather than HTTP/2 because
// a forwarded request then costs the owner no goroutine, no stack growth
// and no frame writer of its own: the connection's goroutine reads the
// request, runs it and writes the answer in one write (docs/RATIONALE.md,
// "Why members forward over HTTP/1.1"). A member's peer listener still
// accepts HTTP/2 (a member of an older version sends it). The entry's side
// is a PeerLink: most requests are written and answered in the forwarding
// goroutine, without net/http's Transport's goroutines.
func PeerTransport(c *tls.Config) *PeerLink {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	fallback := &http.Transport{TLSClientConfig: c.Clone(), Protocols: protocols,
		MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute, TLSHandshakeTimeout: 10 * time.Second}
	return &PeerLink{Fallback: fallback, tls: c.Clone(), maxIdle: 64, idleTimeout: time.Minute,
		dialTimeout: 10 * time.Second}
}

// RequireMutualTLS refuses a listener off loopback whose TLS does not
// require and verify the peer's certificate; field names the setting.
func RequireMutualTLS(field, addr string, c *tls.Config) error {
	if store.IsLoopback(addr) {
		return nil
	}
	if c == nil || c.ClientAuth != tls.RequireAndVerifyClientCert &&
		(c.ClientAuth != tls.RequireAnyClientCert || c.VerifyPeerCertificate == nil) {
		return fmt.Errorf("%s %s: refusing a listener off loopback without mutual TLS", field, addr)
	}
	return nil
}

// PeerListenAddr is peerListen, else the clusterListen host with a free
// port, else loopback. A wildcard address is refused: it names no member.
func PeerListenAddr(peerListen, clusterListen string) (string, error) {
	addr := peerListen
	if addr == "" {
		host := "127.0.0.1"
		if h, _, err := net.SplitHostPort(clusterListen); err == nil && h != "" {
			host = h
		}
		addr = net.JoinHostPort(host, "0")
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("peer_listen %s: give the address the other members reach this one at, not a wildcard", addr)
	}
	return addr, nil
}
