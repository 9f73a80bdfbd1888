package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/spf13/pflag"
)

// TestServeSandboxCapFlags: every sandbox cap has a serve flag, and a flag
// the user set lands in the configuration.
func TestServeSandboxCapFlags(t *testing.T) {
	cmd := newServeCmd(&globals{})
	args := []string{"--sandbox-max-per-owner=3", "--sandbox-max-cpus=0.5", "--sandbox-max-memory-mb=256",
		"--sandbox-max-disk-mb=64", "--sandbox-max-pids=32", "--sandbox-max-timeout=10m"}
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	// The flag values live in the command's own Config; copy them over as
	// RunE does, through a Config that has them.
	src := config.Default()
	src.SandboxMaxPerOwner, src.SandboxMaxCPUs, src.SandboxMaxMemoryMB = 3, 0.5, 256
	src.SandboxMaxDiskMB, src.SandboxMaxPids, src.SandboxMaxTimeout = 64, 32, config.Duration(10*time.Minute)
	final := config.Default()
	n := 0
	cmd.Flags().Visit(func(f *pflag.Flag) { applyFlag(&final, &src, f.Name); n++ })
	if n != len(args) || !reflect.DeepEqual(final, src) {
		t.Fatalf("%d flags visited; config %+v, want %+v", n, final, src)
	}
	if v := cmd.Flags().Lookup("sandbox-max-memory-mb").Value.String(); v != "256" {
		t.Fatalf("sandbox-max-memory-mb parsed as %s", v)
	}
	if err := final.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestServeEgressFlags: the egress settings have serve flags that land in
// the configuration, and a loopback host on a public listen address is
// refused naming the setting.
func TestServeEgressFlags(t *testing.T) {
	cmd := newServeCmd(&globals{})
	args := []string{"--egress-loopback-host=a.test", "--egress-loopback-host=b.test=127.0.0.2", "--egress-upstream-ca-file=/ca.pem"}
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	src := config.Default()
	src.EgressLoopbackHosts, src.EgressUpstreamCAFile = []string{"a.test", "b.test=127.0.0.2"}, "/ca.pem"
	final := config.Default()
	cmd.Flags().Visit(func(f *pflag.Flag) { applyFlag(&final, &src, f.Name) })
	if !reflect.DeepEqual(final, src) {
		t.Fatalf("config %+v, want %+v", final, src)
	}
	final.EgressUpstreamCAFile, final.Listen = "", "0.0.0.0:7070"
	if err := final.Validate(); err == nil || !strings.Contains(err.Error(), "egress_loopback_hosts") {
		t.Fatalf("public listen with loopback hosts: %v", err)
	}
}

// TestServeClusterFlags: the cluster settings have serve flags that land in
// the configuration, and a wrong one is refused naming the setting.
func TestServeClusterFlags(t *testing.T) {
	cmd := newServeCmd(&globals{})
	args := []string{"--cluster=prod", "--node=a", "--cluster-listen=127.0.0.1:6222", "--routes=127.0.0.1:6223,nats-route://127.0.0.1:6224",
		"--peer-listen=127.0.0.1:0", "--cluster-replicas=3", "--cluster-lease-ttl=2s", "--cluster-election-timeout=1s", "--join=bundle.json"}
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	src := config.Default()
	src.Cluster, src.NodeID, src.ClusterListen = "prod", "a", "127.0.0.1:6222"
	src.ClusterRoutes, src.PeerListen = []string{"127.0.0.1:6223", "nats-route://127.0.0.1:6224"}, "127.0.0.1:0"
	src.ClusterReplicas, src.ClusterLeaseTTL, src.Join = 3, config.Duration(2*time.Second), "bundle.json"
	src.ClusterElectionTimeout = config.Duration(time.Second)
	final := config.Default()
	cmd.Flags().Visit(func(f *pflag.Flag) { applyFlag(&final, &src, f.Name) })
	if !reflect.DeepEqual(final, src) {
		t.Fatalf("config %+v, want %+v", final.ClusterConfig, src.ClusterConfig)
	}
	if err := final.Validate(); err != nil {
		t.Fatal(err)
	}
	final.ClusterRoutes = []string{"nats-route://u:p@127.0.0.1:1"}
	if err := final.Validate(); err == nil || !strings.Contains(err.Error(), "cluster_routes") {
		t.Fatalf("credentials in a route: %v", err)
	}
}

// TestServeHTTP3Flag: --http3 lands in the configuration, and without --tls
// it is refused naming the setting and the fix.
func TestServeHTTP3Flag(t *testing.T) {
	cmd := newServeCmd(&globals{})
	if err := cmd.Flags().Parse([]string{"--http3"}); err != nil {
		t.Fatal(err)
	}
	src := config.Default()
	src.HTTP3 = true
	final := config.Default()
	cmd.Flags().Visit(func(f *pflag.Flag) { applyFlag(&final, &src, f.Name) })
	if !final.HTTP3 {
		t.Fatal("--http3 not applied")
	}
	if err := final.Validate(); err == nil || !strings.Contains(err.Error(), "http3") || !strings.Contains(err.Error(), "--tls") {
		t.Fatalf("http3 without tls: %v", err)
	}
	final.TLS = true
	if err := final.Validate(); err != nil {
		t.Fatal(err)
	}
}
