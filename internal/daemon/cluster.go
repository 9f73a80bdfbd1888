package daemon

// Cluster membership (cluster.go): with config cluster the node's embedded
// NATS server routes to the other members (mutual TLS with node SVIDs of
// the shared CA, join.go), buckets are replicated, a cluster.Member holds
// leases on the partitions sessions hash into, the session manager runs
// only the sessions of partitions this node owns (session.Owner), and a
// cluster.Forwarder in front of the router sends every other session
// request to its owner's peer listener (mutual TLS with node SVIDs).

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

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/version"
)

// clusterParts are what startCluster builds.
type clusterParts struct {
	kv      store.KV
	member  atomic.Pointer[cluster.Member] // set once the API listens
	fwd     *cluster.Forwarder
	peerTLS *tls.Config
	peerLn  net.Listener
	peerSrv *http.Server
}

// NodeHeader names, on every response of a cluster member, the member
// that served the request (a session's owner, for a forwarded one).
const NodeHeader = "Agentcloud-Node"

// drainTimeout bounds POST /v1/node/drain.
const drainTimeout = 60 * time.Second

// clusterStoreOptions makes the store a cluster member: routes with mutual
// TLS (node SVID), buckets replicated.
func (d *Daemon) clusterStoreOptions(o *store.Options) error {
	if d.cfg.Cluster == "" {
		return nil
	}
	o.Replicas = d.cfg.Replicas()
	if d.cfg.NATSURL != "" {
		return nil // an existing NATS cluster routes
	}
	tlsCfg, err := d.nodePeerTLS()
	if err != nil {
		return err
	}
	if err := requireMutualTLS("cluster_listen", d.cfg.ClusterListen, tlsCfg); err != nil {
		return err
	}
	o.Cluster = &store.ClusterOptions{Name: d.cfg.Cluster, Node: d.cfg.NodeID, Listen: d.cfg.ClusterListen,
		Routes: d.cfg.ClusterRoutes, TLS: tlsCfg}
	return nil
}

// nodePeerTLS is the TLS of links between members: this node's X.509-SVID
// (spiffe://TD/node/NODE), accepting only node SVIDs of the same CA.
func (d *Daemon) nodePeerTLS() (*tls.Config, error) {
	ca, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: d.cfg.TrustDomain}, d.caDir())
	if err != nil {
		return nil, fmt.Errorf("cluster: certificate authority: %w", err)
	}
	id, err := identity.NewID(ca.TrustDomain(), identity.KindNode, d.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("cluster: node identity: %w", err)
	}
	rot, err := ca.NewRotator(id, "localhost", d.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("cluster: node certificate: %w", err)
	}
	return ca.PeerTLSConfig(rot), nil
}

// requireMutualTLS refuses a listener off loopback whose TLS does not
// require and verify the peer's certificate.
func requireMutualTLS(field, addr string, c *tls.Config) error {
	if store.IsLoopback(addr) {
		return nil
	}
	if c == nil || c.ClientAuth != tls.RequireAndVerifyClientCert &&
		(c.ClientAuth != tls.RequireAnyClientCert || c.VerifyPeerCertificate == nil) {
		return fmt.Errorf("%s %s: refusing a listener off loopback without mutual TLS", field, addr)
	}
	return nil
}

// peerListenAddr is peer_listen, else the cluster_listen host with a free
// port, else loopback.
func (d *Daemon) peerListenAddr() (string, error) {
	addr := d.cfg.PeerListen
	if addr == "" {
		host := "127.0.0.1"
		if h, _, err := net.SplitHostPort(d.cfg.ClusterListen); err == nil && h != "" {
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

// startCluster opens the cluster bucket, the peer listener and the
// forwarder. The member itself starts once the API listens (startPeers),
// so it can announce the API's address; until then this node owns nothing
// and answers session requests 503 with Retry-After.
func (d *Daemon) startCluster(ctx context.Context) error {
	if d.cfg.Cluster == "" {
		return nil
	}
	kv, err := d.store.KV(ctx, "cluster", store.KVOptions{Description: "cluster members and partition leases"})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	peerAddr, err := d.peerListenAddr()
	if err != nil {
		return err
	}
	c := &clusterParts{kv: kv}
	if c.peerTLS, err = d.nodePeerTLS(); err != nil {
		return err
	}
	if err := requireMutualTLS("peer_listen", peerAddr, c.peerTLS); err != nil {
		return err
	}
	if c.peerLn, err = net.Listen("tcp", peerAddr); err != nil {
		return fmt.Errorf("peer_listen %s: %w", peerAddr, err)
	}
	d.cluster = c
	c.fwd = &cluster.Forwarder{Node: d.cfg.NodeID, Owners: c,
		Local: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(NodeHeader, d.cfg.NodeID) // forwarded back as it is
			d.router.ServeHTTP(w, r)
		}),
		Transport: &http.Transport{TLSClientConfig: c.peerTLS.Clone(), ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}
	return nil
}

// startMember creates and starts the member. Taking a partition loads its
// sessions' alarms; handing one off hibernates its live sessions first.
func (d *Daemon) startMember(ctx context.Context, c *clusterParts) error {
	sessions := d.sessions
	ttl := d.cfg.LeaseTTL()
	m, err := cluster.New(cluster.Config{Node: d.cfg.NodeID, Addr: c.peerLn.Addr().String(), KV: c.kv,
		API: d.localAddr(), Heartbeat: ttl / 6, TTL: ttl, Version: version.Get().Version, Logger: d.log.With("component", "cluster"),
		Acquire: func(ctx context.Context, p int, epoch uint64) {
			if err := sessions.LoadAlarms(ctx, c.inPartition(p)); err != nil {
				d.log.Warn("cluster: load alarms", "partition", p, "err", err)
			}
		},
		Release: func(ctx context.Context, p int) error { return sessions.HibernateWhere(ctx, c.inPartition(p)) },
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	c.member.Store(m)
	return m.Start(ctx)
}

// Partition, Owned and OwnerOf make clusterParts the forwarder's Owners:
// the member's answers once it runs, nothing owned before.
func (c *clusterParts) Partition(agent, session string) int {
	return cluster.PartitionOf(agent, session, cluster.DefaultPartitions)
}

func (c *clusterParts) Owned(p int) (uint64, bool) {
	if m := c.member.Load(); m != nil {
		return m.Owned(p)
	}
	return 0, false
}

func (c *clusterParts) OwnerOf(p int) (string, string, bool) {
	if m := c.member.Load(); m != nil {
		return m.OwnerOf(p)
	}
	return "", "", false
}

// inPartition selects the sessions of partition p.
func (c *clusterParts) inPartition(p int) func(agent, id string) bool {
	return func(agent, id string) bool { return c.Partition(agent, id) == p }
}

// closeCluster stops forwarding (closePeers has handed the partitions
// off).
func (d *Daemon) closeCluster(context.Context) error {
	c := d.cluster
	if c == nil {
		return nil
	}
	if c.peerLn != nil {
		_ = c.peerLn.Close()
	}
	if c.fwd != nil {
		c.fwd.Transport.(*http.Transport).CloseIdleConnections()
	}
	d.cluster = nil
	return nil
}

// startPeers serves the peer listener (session requests other members
// forward) and starts the member. It is closed first: the peer listener
// stops, then the member hands every partition off, its sessions saved by
// the session manager, which closes after it.
func (d *Daemon) startPeers(ctx context.Context) error {
	c := d.cluster
	if c == nil {
		return nil
	}
	peer := c.fwd.Peer()
	c.peerSrv = &http.Server{
		// A forwarded request is authenticated by the token it carries;
		// the TLS peer is the forwarding node, never the client.
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.TLS = nil
			peer.ServeHTTP(w, r)
		}),
		TLSConfig:         c.peerTLS.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       d.cfg.ReadTimeout.D(),
		WriteTimeout:      d.cfg.WriteTimeout.D(),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are not the node's errors
	}
	go func() { _ = c.peerSrv.ServeTLS(c.peerLn, "", "") }()
	return d.startMember(ctx, c)
}

func (d *Daemon) closePeers(ctx context.Context) error {
	c := d.cluster
	if c == nil {
		return nil
	}
	if c.peerSrv != nil {
		if err := c.peerSrv.Shutdown(ctx); err != nil {
			_ = c.peerSrv.Close()
		}
	}
	if m := c.member.Load(); m != nil {
		return m.Close(ctx)
	}
	return nil
}

// publicHandler is what the API listener serves: the forwarder in a
// cluster, else the router.
func (d *Daemon) publicHandler() http.Handler {
	if d.cluster != nil {
		return d.cluster.fwd
	}
	return d.router
}

// sessionOwner is the session manager's Owner: nil outside a cluster.
func (d *Daemon) sessionOwner() session.Owner {
	if d.cluster == nil {
		return nil
	}
	return d.cluster
}

// Owns makes clusterParts the session manager's Owner.
func (c *clusterParts) Owns(agent, id string) (uint64, bool) {
	return c.Owned(c.Partition(agent, id))
}

// clusterRoutes registers GET /v1/cluster/status and POST /v1/node/drain.
// Outside a cluster they answer 409.
func (d *Daemon) clusterRoutes() {
	d.router.Handle(httpapi.Route{Method: "GET", Path: "/v1/cluster/status", Tag: "cluster", Action: "status.read",
		Summary:  "The cluster as this node sees it: members, health, versions and the partitions each owns.",
		Response: api.ClusterStatus{}, Handler: d.handleClusterStatus})
	d.router.Handle(httpapi.Route{Method: "POST", Path: "/v1/node/drain", Tag: "cluster", // admins only
		Summary:  "Hand every partition of this node to the other members (before a restart); it keeps forwarding.",
		Response: api.NodeDrain{}, Handler: d.handleDrain})
}

// member is the running member; a 409 problem outside a cluster, 503
// before the member runs.
func (d *Daemon) member() (*cluster.Member, error) {
	if d.cfg.Cluster == "" {
		return nil, api.Errorf(api.KindConflict, "node %s is not a member of a cluster: start it with serve --cluster NAME", d.cfg.NodeID)
	}
	if c := d.cluster; c != nil {
		if m := c.member.Load(); m != nil {
			return m, nil
		}
	}
	p := api.Errorf(api.KindUnavailable, "this node has not joined its cluster yet: retry in a second")
	p.RetryAfterSeconds = 1
	return nil, p
}

func (d *Daemon) handleClusterStatus(w http.ResponseWriter, r *http.Request) error {
	m, err := d.member()
	if err != nil {
		return err
	}
	st := api.ClusterStatus{Cluster: d.cfg.Cluster, Node: d.cfg.NodeID, Partitions: m.Partitions(), Replicas: d.cfg.Replicas()}
	owned := map[string]int{}
	for p := range m.Partitions() {
		if node, _, ok := m.OwnerOf(p); ok {
			owned[node]++
		} else {
			st.Unowned++
		}
	}
	for _, mi := range m.Members() {
		st.Members = append(st.Members, api.ClusterMember{Node: mi.Node, API: mi.API, Peer: mi.Addr, Version: mi.Version,
			Healthy: mi.Live, Draining: mi.Draining, Partitions: owned[mi.Node]})
	}
	httpapi.WriteJSON(w, http.StatusOK, st)
	return nil
}

func (d *Daemon) handleDrain(w http.ResponseWriter, r *http.Request) error {
	m, err := d.member()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), drainTimeout)
	defer cancel()
	err = m.Drain(ctx)
	res := api.NodeDrain{Node: d.cfg.NodeID, Partitions: m.OwnedCount()}
	if err != nil {
		return api.Errorf(api.KindUnavailable, "drain of %s: %d partitions left after %v: %v", d.cfg.NodeID, res.Partitions, drainTimeout, err)
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}
