package config

import (
	"strings"
	"testing"
	"time"
)

// TestClusterSettingsClass: every cluster setting is read from the file and
// the environment, and each wrong one is refused naming its field.
func TestClusterSettingsClass(t *testing.T) {
	c := Default()
	if err := c.decode(strings.NewReader(`{"cluster":"prod","cluster_listen":"127.0.0.1:6222",
		"cluster_routes":["nats-route://127.0.0.1:6223","127.0.0.1:6224"],"peer_listen":"127.0.0.1:0",
		"cluster_replicas":3,"cluster_lease_ttl":"2s","cluster_election_timeout":"3s","join":"/tmp/j.json","node_id":"a1"}`), "test.json"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "prod" || len(c.ClusterRoutes) != 2 || c.Replicas() != 3 || c.LeaseTTL() != 2*time.Second || c.Join != "/tmp/j.json" ||
		c.ClusterElectionTimeout.D() != 3*time.Second {
		t.Fatalf("file not applied: %+v", c.ClusterConfig)
	}
	env := map[string]string{"AGENTCLOUD_CLUSTER": "b", "AGENTCLOUD_CLUSTER_LISTEN": "127.0.0.1:1",
		"AGENTCLOUD_CLUSTER_ROUTES": "127.0.0.1:2, 127.0.0.1:3", "AGENTCLOUD_PEER_LISTEN": "127.0.0.1:4",
		"AGENTCLOUD_CLUSTER_REPLICAS": "0", "AGENTCLOUD_CLUSTER_LEASE_TTL": "1s", "AGENTCLOUD_JOIN": "x",
		"AGENTCLOUD_CLUSTER_ELECTION_TIMEOUT": "4s"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "b" || c.ClusterListen != "127.0.0.1:1" || len(c.ClusterRoutes) != 2 || c.PeerListen != "127.0.0.1:4" ||
		c.Replicas() != 3 || c.LeaseTTL() != time.Second || c.Join != "x" || c.ClusterElectionTimeout.D() != 4*time.Second {
		t.Fatalf("env not applied: %+v", c.ClusterConfig)
	}
	for _, bad := range []string{"AGENTCLOUD_CLUSTER_REPLICAS", "AGENTCLOUD_CLUSTER_LEASE_TTL", "AGENTCLOUD_CLUSTER_ELECTION_TIMEOUT"} {
		err := c.LoadEnv(func(k string) (string, bool) { return "nope", k == bad })
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s=nope: %v", bad, err)
		}
	}

	base := func() Config {
		c := Default()
		c.NodeID = "n1"
		c.Cluster, c.ClusterListen = "prod", "127.0.0.1:6222"
		return c
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"cluster", func(c *Config) { c.Cluster = "Prod Cluster" }},
		{"cluster", func(c *Config) { c.Cluster = strings.Repeat("a", 64) }},
		{"node_id", func(c *Config) { c.NodeID = "Node_1" }},
		{"cluster_listen", func(c *Config) { c.ClusterListen = "" }},
		{"cluster_listen", func(c *Config) { c.ClusterListen = "somehost:6222" }},
		{"cluster_listen", func(c *Config) { c.NATSURL = "nats://127.0.0.1:4222" }},
		{"cluster_routes", func(c *Config) { c.ClusterRoutes = []string{"nats-route://user:pw@127.0.0.1:6222"} }},
		{"cluster_routes", func(c *Config) { c.ClusterRoutes = []string{"http://127.0.0.1:6222"} }},
		{"cluster_routes", func(c *Config) { c.ClusterRoutes = []string{"127.0.0.1"} }},
		{"cluster_routes", func(c *Config) { c.ClusterRoutes = []string{"127.0.0.1:99999"} }},
		{"cluster_routes", func(c *Config) { c.ClusterRoutes = make([]string, 65) }},
		{"peer_listen", func(c *Config) { c.PeerListen = "x" }},
		{"cluster_replicas", func(c *Config) { c.ClusterReplicas = 6 }},
		{"cluster_replicas", func(c *Config) { c.ClusterReplicas = -1 }},
		{"cluster_lease_ttl", func(c *Config) { c.ClusterLeaseTTL = Duration(100 * time.Millisecond) }},
		{"cluster_election_timeout", func(c *Config) { c.ClusterElectionTimeout = Duration(100 * time.Millisecond) }},
		{"cluster_election_timeout", func(c *Config) { c.ClusterElectionTimeout = Duration(time.Minute) }},
		{"join", func(c *Config) { c.Cluster, c.ClusterListen, c.Join = "", "", "bundle.json" }},
		{"peer_listen", func(c *Config) { c.Cluster, c.ClusterListen, c.PeerListen = "", "", "127.0.0.1:1" }},
		{"cluster_routes", func(c *Config) { c.Cluster, c.ClusterListen, c.ClusterRoutes = "", "", []string{"127.0.0.1:1"} }},
	}
	for _, tc := range cases {
		c := base()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: want an error naming %s, got %v", tc.field, tc.field, err)
		}
	}
	// An existing NATS cluster: no route settings needed.
	c = base()
	c.ClusterListen, c.NATSURL = "", "nats://127.0.0.1:4222"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
