package daemon

// Cluster membership (cluster.go): with config cluster the node's embedded
// NATS server routes to the other members (mutual TLS with node SVIDs of
// the shared CA, clusterjoin), buckets are replicated, a cluster.Node holds
// leases on the partitions sessions hash into, the session manager runs
// only the sessions of partitions this node owns (session.Owner), and the
// node's forwarder in front of the router sends every other session
// request to its owner's peer listener.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"

	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/cluster/clusterhttp"
	"github.com/agentcloud/agentcloud/internal/cluster/clusterjoin"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/version"
)

// NodeHeader names the member that served a request (cluster.NodeHeader).
const NodeHeader = cluster.NodeHeader

// WriteJoinBundle writes the join bundle of the node whose configuration
// is cfg to w (clusterjoin.Write).
func WriteJoinBundle(cfg config.Config, w io.Writer) error {
	return clusterjoin.Write(cfg, w)
}

// installJoin installs config join's bundle before the store opens.
func (d *Daemon) installJoin(context.Context) error {
	done, err := clusterjoin.Install(d.cfg)
	if done {
		d.log.Info("installed join bundle", "file", d.cfg.Join, "trust_domain", d.cfg.TrustDomain)
	}
	return err
}

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
	if err := cluster.RequireMutualTLS("cluster_listen", d.cfg.ClusterListen, tlsCfg); err != nil {
		return err
	}
	o.Cluster = &store.ClusterOptions{Name: d.cfg.Cluster, Node: d.cfg.NodeID, Listen: d.cfg.ClusterListen,
		Routes: d.cfg.ClusterRoutes, TLS: tlsCfg, ElectionTimeout: d.cfg.ClusterElectionTimeout.D(),
		StaggerElections: true}
	return nil
}

// nodePeerTLS is the TLS of links between members (cluster.PeerTLS).
func (d *Daemon) nodePeerTLS() (*tls.Config, error) {
	ca, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: d.cfg.TrustDomain}, d.cfg.CAPath())
	if err != nil {
		return nil, fmt.Errorf("cluster: certificate authority: %w", err)
	}
	return cluster.PeerTLS(ca, d.cfg.NodeID)
}

// startCluster opens the cluster bucket, the peer listener and the
// forwarder. The member starts once the API listens (startPeers), so it
// can announce the API's address.
func (d *Daemon) startCluster(ctx context.Context) error {
	if d.cfg.Cluster == "" {
		return nil
	}
	kv, err := d.store.KV(ctx, "cluster", store.KVOptions{Description: "cluster members and partition leases"})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	peerAddr, err := cluster.PeerListenAddr(d.cfg.PeerListen, d.cfg.ClusterListen)
	if err != nil {
		return err
	}
	peerTLS, err := d.nodePeerTLS()
	if err != nil {
		return err
	}
	// The router is built after this part ("api"): look it up per request.
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { d.router.ServeHTTP(w, r) })
	n, err := cluster.Listen(cluster.NodeConfig{Node: d.cfg.NodeID, PeerAddr: peerAddr, PeerTLS: peerTLS, Local: local,
		ReadTimeout: d.cfg.ReadTimeout.D(), WriteTimeout: d.cfg.WriteTimeout.D(), Metrics: d.reg, Run: d.sessions.CallOwned})
	if err != nil {
		return err
	}
	d.cluster = &clusterParts{kv: kv, node: n}
	return nil
}

// clusterParts are what startCluster builds.
type clusterParts struct {
	kv   store.KV
	node *cluster.Node
}

// startPeers serves the peer listener and starts the member. Taking a
// partition loads its sessions' alarms; handing one off hibernates its
// live sessions first.
func (d *Daemon) startPeers(ctx context.Context) error {
	c := d.cluster
	if c == nil {
		return nil
	}
	sessions, ttl := d.sessions, d.cfg.LeaseTTL()
	return c.node.Start(ctx, cluster.Config{Node: d.cfg.NodeID, KV: c.kv,
		API: d.localAddr(), Heartbeat: ttl / 6, TTL: ttl, Version: version.Get().Version, Logger: d.log.With("component", "cluster"),
		Acquire: func(ctx context.Context, ps []int) {
			if err := sessions.LoadAlarms(ctx, c.node.InPartitions(ps)); err != nil {
				d.log.Warn("cluster: load alarms", "partitions", len(ps), "err", err)
			}
		},
		Release: func(ctx context.Context, p int) error { return sessions.HibernateWhere(ctx, c.node.InPartition(p)) },
	})
}

// closePeers stops serving peers, then the member hands every partition
// off, its sessions saved by the session manager, which closes after it.
func (d *Daemon) closePeers(ctx context.Context) error {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.node.Shutdown(ctx)
}

// closeCluster stops forwarding.
func (d *Daemon) closeCluster(context.Context) error {
	if d.cluster != nil {
		d.cluster.node.Close()
		d.cluster = nil
	}
	return nil
}

// publicHandler is what the API listener serves: the forwarder in a
// cluster, else the router.
func (d *Daemon) publicHandler() http.Handler {
	if d.cluster != nil {
		return d.cluster.node.Handler()
	}
	return d.router
}

// sessionOwner is the session manager's Owner: nil outside a cluster.
func (d *Daemon) sessionOwner() session.Owner {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.node
}

// clusterRoutes registers the cluster's routes (409 outside a cluster).
func (d *Daemon) clusterRoutes() {
	clusterhttp.New(clusterhttp.Config{Cluster: d.cfg.Cluster, Node: d.cfg.NodeID, Replicas: d.cfg.Replicas(), StepDown: d.store.StepDownLeaders,
		Member: func() *cluster.Member {
			if c := d.cluster; c != nil {
				return c.node.Member()
			}
			return nil
		}}).Routes(d.router)
}
