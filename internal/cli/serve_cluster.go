package cli

import (
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/spf13/pflag"
)

// addClusterFlags adds serve's cluster flags (config cluster.go).
func addClusterFlags(f *pflag.FlagSet, cfg *config.Config) {
	f.StringVar(&cfg.Cluster, "cluster", "", "make this node a member of the named cluster (needs --cluster-listen, or --nats-url for an existing NATS cluster)")
	f.StringVar(&cfg.NodeID, "node", cfg.NodeID, "this node's name in the cluster (same as --node-id)")
	f.StringVar(&cfg.ClusterListen, "cluster-listen", "", "HOST:PORT where the embedded NATS server accepts routes from the other members (mutual TLS with node certificates)")
	f.StringSliceVar(&cfg.ClusterRoutes, "routes", nil, "the other members' route addresses, comma-separated (nats-route://HOST:PORT or HOST:PORT)")
	f.StringVar(&cfg.PeerListen, "peer-listen", "", "HOST:PORT where this member takes session requests forwarded by the others (default: the --cluster-listen host, a free port)")
	f.IntVar(&cfg.ClusterReplicas, "cluster-replicas", 0, "copies of each bucket and stream (0 = min(3, members named by --routes + 1))")
	f.Var(&cfg.ClusterLeaseTTL, "cluster-lease-ttl", "how long a silent member keeps its partitions before others take them (default 3s; the same on every member)")
	f.Var(&cfg.ClusterElectionTimeout, "cluster-election-timeout", "how long followers of a replicated stream wait for a silent leader before electing another (default 1s)")
	f.StringVar(&cfg.Join, "join", "", "join bundle from 'agentcloud cluster join-bundle' on a member: install its CA, admin token and secrets key before starting")
}

// applyClusterFlag copies the cluster flag name from src to dst.
func applyClusterFlag(dst, src *config.Config, name string) {
	switch name {
	case "cluster":
		dst.Cluster = src.Cluster
	case "node":
		dst.NodeID = src.NodeID
	case "cluster-listen":
		dst.ClusterListen = src.ClusterListen
	case "routes":
		dst.ClusterRoutes = src.ClusterRoutes
	case "peer-listen":
		dst.PeerListen = src.PeerListen
	case "cluster-replicas":
		dst.ClusterReplicas = src.ClusterReplicas
	case "cluster-lease-ttl":
		dst.ClusterLeaseTTL = src.ClusterLeaseTTL
	case "cluster-election-timeout":
		dst.ClusterElectionTimeout = src.ClusterElectionTimeout
	case "join":
		dst.Join = src.Join
	}
}
