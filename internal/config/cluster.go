package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// ClusterConfig are the cluster settings, embedded in Config: a node that names a cluster is one member of
// it. Its embedded NATS server routes to the other members (mutual TLS with
// node SVIDs), buckets are replicated, sessions have one owner each, and a
// request for a session another member owns is forwarded to that member's
// peer listener (mutual TLS with node SVIDs as well).
type ClusterConfig struct {
	// Cluster is the cluster's name ("" = a single node).
	Cluster string `json:"cluster"`
	// ClusterListen is where the embedded NATS server accepts routes from
	// the other members (host:port). Needed with cluster unless nats_url
	// names an existing NATS cluster.
	ClusterListen string `json:"cluster_listen"`
	// ClusterRoutes are the other members' route addresses
	// (nats-route://host:port or host:port); one reachable member is
	// enough, the cluster gossips the rest.
	ClusterRoutes []string `json:"cluster_routes"`
	// PeerListen is where this member accepts session requests forwarded
	// by the others (default: the cluster_listen host, a free port).
	PeerListen string `json:"peer_listen"`
	// ClusterReplicas is how many copies of each bucket and stream the
	// cluster keeps (0 = min(3, members named by cluster_routes + 1)).
	ClusterReplicas int `json:"cluster_replicas"`
	// ClusterLeaseTTL is how long a silent member keeps its sessions'
	// partitions before others take them (the failover time); members
	// renew every sixth of it. Every member must use the same.
	ClusterLeaseTTL Duration `json:"cluster_lease_ttl"`
	// ClusterElectionTimeout is how long the followers of a replicated
	// stream wait for its silent leader before they elect another (random
	// in [t, 2t); 0 = 1s): with the lease TTL, the floor of a failover.
	ClusterElectionTimeout Duration `json:"cluster_election_timeout"`
	// Join is a join bundle (`agentcloud cluster join-bundle`) installed
	// into the data dir before the store opens, so this node shares the
	// cluster's CA, admin token and secrets key.
	Join string `json:"join"`
}

// DefaultClusterLeaseTTL is cluster_lease_ttl's default.
const DefaultClusterLeaseTTL = 3 * time.Second

// loadClusterEnv merges the AGENTCLOUD_CLUSTER* variables, PEER_LISTEN and
// JOIN.
func (c *Config) loadClusterEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	get := func(name string) (string, bool) { return lookup("AGENTCLOUD_" + name) }
	for name, dst := range map[string]*string{"CLUSTER": &c.Cluster, "CLUSTER_LISTEN": &c.ClusterListen,
		"PEER_LISTEN": &c.PeerListen, "JOIN": &c.Join} {
		if v, ok := get(name); ok {
			*dst = v
		}
	}
	if v, ok := get("CLUSTER_ROUTES"); ok {
		c.ClusterRoutes = splitList(v)
	}
	if v, ok := get("CLUSTER_REPLICAS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_CLUSTER_REPLICAS", v, "want a whole number"})
		}
		c.ClusterReplicas = n
	}
	for name, dst := range map[string]*Duration{"CLUSTER_LEASE_TTL": &c.ClusterLeaseTTL,
		"CLUSTER_ELECTION_TIMEOUT": &c.ClusterElectionTimeout} {
		if v, ok := get(name); ok {
			if err := dst.Set(v); err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, err.Error()})
			}
		}
	}
	return errs
}

// validateCluster checks the cluster settings.
func (c Config) validateCluster() Errors {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	if c.Cluster == "" {
		for field, v := range map[string]string{"cluster_listen": c.ClusterListen, "peer_listen": c.PeerListen,
			"join": c.Join, "cluster_routes": strings.Join(c.ClusterRoutes, ",")} {
			if v != "" {
				add(field, v, "needs cluster: name the cluster (--cluster NAME) this node is a member of")
			}
		}
		if c.ClusterReplicas != 0 {
			add("cluster_replicas", strconv.Itoa(c.ClusterReplicas), "needs cluster: name the cluster (--cluster NAME)")
		}
		return errs
	}
	if p := api.CheckID("cluster", api.IDNode, c.Cluster); p != nil {
		add("cluster", c.Cluster, "want a name of a-z first, then a-z 0-9 -, at most 63 characters")
	}
	if p := api.CheckID("node", api.IDNode, c.NodeID); p != nil {
		add("node_id", c.NodeID, "a cluster member's name (--node) wants a-z first, then a-z 0-9 -, at most 63 characters")
	}
	switch {
	case c.NATSURL != "" && (c.ClusterListen != "" || len(c.ClusterRoutes) > 0):
		add("cluster_listen", c.ClusterListen, "with nats_url the existing NATS cluster routes; leave cluster_listen and cluster_routes empty")
	case c.NATSURL == "" && c.ClusterListen == "":
		add("cluster_listen", "", "a cluster member needs a route address (--cluster-listen HOST:PORT), or nats_url for an existing NATS cluster")
	case c.ClusterListen != "":
		if err := checkAddr(c.ClusterListen); err != nil {
			add("cluster_listen", c.ClusterListen, err.Error())
		}
	}
	if len(c.ClusterRoutes) > 64 {
		add("cluster_routes", strings.Join(c.ClusterRoutes[:3], ",")+",...", "want at most 64 routes")
	} else {
		for _, r := range c.ClusterRoutes {
			if !validRoute(r) {
				add("cluster_routes", r, "want nats-route://host:port or host:port, without credentials")
			}
		}
	}
	if c.PeerListen != "" {
		if err := checkAddr(c.PeerListen); err != nil {
			add("peer_listen", c.PeerListen, err.Error())
		}
	}
	if n := c.ClusterReplicas; n < 0 || n > 5 {
		add("cluster_replicas", strconv.Itoa(n), "want 0 (min(3, members)) or from 1 to 5")
	}
	if d := c.ClusterLeaseTTL.D(); d != 0 && (d < 600*time.Millisecond || d > 5*time.Minute) {
		add("cluster_lease_ttl", c.ClusterLeaseTTL.String(), "want 0 (3s) or a duration from 600ms to 5m")
	}
	if d := c.ClusterElectionTimeout.D(); d != 0 && (d < 600*time.Millisecond || d > 30*time.Second) {
		add("cluster_election_timeout", c.ClusterElectionTimeout.String(), "want 0 (1s) or a duration from 600ms to 30s")
	}
	return errs
}

// validRoute accepts host:port with an optional nats-route://, nats:// or
// tls:// scheme and no credentials.
func validRoute(r string) bool {
	raw := r
	if !strings.Contains(r, "://") {
		raw = "nats-route://" + r
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Host == "" || u.Path != "" || u.RawQuery != "" {
		return false
	}
	switch u.Scheme {
	case "nats-route", "nats", "tls":
	default:
		return false
	}
	_, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p <= 65535
}

// Replicas is how many copies of each bucket the cluster keeps (1 outside
// a cluster).
func (c Config) Replicas() int {
	switch {
	case c.Cluster == "":
		return 1
	case c.ClusterReplicas > 0:
		return c.ClusterReplicas
	}
	return min(3, len(c.ClusterRoutes)+1)
}

// LeaseTTL is cluster_lease_ttl or its default.
func (c Config) LeaseTTL() time.Duration {
	if c.ClusterLeaseTTL <= 0 {
		return DefaultClusterLeaseTTL
	}
	return c.ClusterLeaseTTL.D()
}

// ClusterNode is this node's name in a cluster (node_id), "" outside one:
// what names the node in ids that say where a thing lives (sandboxes).
func (c Config) ClusterNode() string {
	if c.Cluster == "" {
		return ""
	}
	return c.NodeID
}
