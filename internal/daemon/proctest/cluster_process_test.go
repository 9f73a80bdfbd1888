package proctest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

const counterManifest = `{"name":"counter","entry":"agent.js","limits":{"idle_seconds":3600}}`

// clusterTTL is the lease TTL of test clusters. The default (3 s) holds
// on a quiet machine; with the load of several engineers' builds and
// tests (load average 40 on two cores) a member's renewals lag that long,
// the others take its leases, and the cluster never settles. The tests
// check what happens, not how fast; BenchmarkClusterFailover measures
// with the default.
const clusterTTL = "10s"

// clusterNode is one member of a test cluster: `agentcloud serve` in its
// own process with its own data dir.
type clusterNode struct {
	name   string
	data   string
	args   []string
	cmd    *exec.Cmd
	out    *lockedWriter
	exited chan struct{}
	client *client.Client
}

// launch starts the node's process without waiting for it.
func (n *clusterNode) launch(t testing.TB) {
	t.Helper()
	_ = os.Remove(filepath.Join(n.data, daemon.AddrFile))
	args := append([]string{"serve", "--data", n.data, "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"}, n.args...)
	n.cmd = exec.Command(os.Args[0], args...)
	// An agent's first session on a member just restarted compiles its
	// bundle; with the whole suite beside it on 2 cores that once took
	// past the default 10 s agent_init_timeout (a 504 in
	// TestClusterRollingRestart). These tests are about routing, leases
	// and restarts, not about init time under load.
	n.cmd.Env = append(os.Environ(), "AGENTCLOUD_TEST_MAIN=1", "AGENTCLOUD_SANDBOX_POOL_GVISOR=0", "AGENTCLOUD_AGENT_INIT_TIMEOUT=60s")
	// A member outlives no test process (one killed by a timeout left
	// members of its clusters running, routing to later clusters' ports).
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n.out = &lockedWriter{}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.exited = make(chan struct{})
	cmd, exited := n.cmd, n.exited
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
}

// errNotStarted is a node that did not serve within its deadline.
var errNotStarted = errors.New("did not start")

// wait waits until the node serves and is ready.
func (n *clusterNode) wait(t testing.TB) {
	t.Helper()
	if err := n.waitUntil(t, time.Now().Add(clusterFormTimeout)); err != nil {
		t.Fatalf("%s %v\n%s", n.name, err, n.out)
	}
}

// waitUntil waits until the node serves and is ready, or deadline.
func (n *clusterNode) waitUntil(t testing.TB, deadline time.Time) error {
	t.Helper()
	for {
		b, err := os.ReadFile(filepath.Join(n.data, daemon.AddrFile))
		if err == nil && len(b) > 0 {
			tok, _ := os.ReadFile(filepath.Join(n.data, auth.TokenFile))
			n.client, _ = client.New("http://"+strings.TrimSpace(string(b)), strings.TrimSpace(string(tok)))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := n.client.WaitReady(ctx); err != nil {
				t.Fatalf("%s not ready: %v\n%s", n.name, err, n.out)
			}
			return nil
		}
		select {
		case <-n.exited:
			t.Fatalf("%s exited early\n%s", n.name, n.out)
		default:
		}
		if time.Now().After(deadline) {
			return errNotStarted
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill9 kills the node's process with SIGKILL and waits for it to exit.
func (n *clusterNode) kill9(t testing.TB) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-n.exited
}

// clusterFormTimeout bounds how long a fresh cluster may take to serve:
// every member creates every replicated bucket at start, a few hundred
// milliseconds each on a loaded machine.
const clusterFormTimeout = 3 * time.Minute

// startClusterProcs starts n members on loopback as one cluster: the first
// node's data dir gets the trust material and writes the join bundle, the
// others join with it; all start together (JetStream elects its meta leader
// once a quorum of them runs). The route ports lie outside the kernel's
// ephemeral range (storetest.FreeAddrs), so no other connection takes one
// before its member binds it.
func startClusterProcs(t testing.TB, n int) []*clusterNode {
	t.Helper()
	return startClusterProcsTTL(t, n, clusterTTL)
}

// startClusterProcsTTL is startClusterProcs with lease TTL ttl.
func startClusterProcsTTL(t testing.TB, n int, ttl string) []*clusterNode {
	t.Helper()
	routes := storetest.FreeAddrs(t, n)
	dir := t.TempDir()
	bundlePath := filepath.Join(dir, "join.json")
	nodes := make([]*clusterNode, n)
	for i := range n {
		nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i), data: filepath.Join(dir, fmt.Sprintf("n%d", i))}
	}
	cfg := config.Default()
	cfg.Data = nodes[0].data
	var buf bytes.Buffer
	if err := daemon.WriteJoinBundle(cfg, &buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundlePath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, nd := range nodes {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, "nats-route://"+r)
			}
		}
		nd.args = []string{"--cluster", "test", "--node", nd.name, "--cluster-listen", routes[i],
			"--routes", strings.Join(others, ","), "--cluster-lease-ttl", ttl}
		if i > 0 {
			nd.args = append(nd.args, "--join", bundlePath)
		}
		nd.launch(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range nodes {
				t.Logf("log of %s:\n%s", nd.name, nd.out)
			}
		}
	})
	started := time.Now()
	deadline := started.Add(clusterFormTimeout)
	for _, nd := range nodes {
		if err := nd.waitUntil(t, deadline); err != nil {
			t.Fatalf("%s %v in %v", nd.name, err, clusterFormTimeout)
		}
	}
	waitBalanced(t, nodes)
	t.Logf("cluster formed in %v", time.Since(started).Round(time.Millisecond))
	return nodes
}

// waitBalanced waits until every live member is healthy in the cluster
// status of each and every partition has an owner.
func waitBalanced(t testing.TB, nodes []*clusterNode) {
	t.Helper()
	deadline := time.Now().Add(clusterFormTimeout)
	for {
		ok := true
		for _, nd := range nodes {
			st, err := nd.client.ClusterStatus(context.Background())
			if err != nil || st.Unowned != 0 || len(st.Members) != len(nodes) {
				ok = false
				break
			}
			for _, m := range st.Members {
				if !m.Healthy || m.Partitions == 0 {
					ok = false
				}
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			st, err := nodes[0].client.ClusterStatus(context.Background())
			t.Fatalf("cluster did not settle: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// counterCall increments session id of the counter agent through c,
// retrying only on 503 with Retry-After (a hand-off or failover in
// progress), as clients are told to. It returns the stored count the
// acknowledgement carries.
func counterCall(ctx context.Context, c *client.Client, id string) (int, error) {
	for {
		resp, err := c.Call(ctx, "counter", id, "POST", "/", nil, nil)
		if err != nil {
			return 0, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("%s: %w", body, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		var r counterResp
		if err := json.Unmarshal(body, &r); err != nil {
			return 0, err
		}
		return r.Stored, nil
	}
}

// echoCall calls session id of echoAgent through c, retrying only on 503
// with Retry-After.
func echoCall(ctx context.Context, c *client.Client, id string) error {
	for {
		resp, err := c.Call(ctx, "echo", id, "POST", "/", nil, nil)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", body, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		case resp.StatusCode != http.StatusOK || string(body) != "ok":
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		default:
			return nil
		}
	}
}

// TestClusterShared forms one three-member cluster for several checks,
// run as subtests in turn: the one that drains a member comes after those
// that need every member, and the one that kills a member comes last.
// Forming a cluster (three daemon processes, a Raft election, every
// replicated bucket created) is the most expensive set-up in the suite,
// so checks share one where they can; the kill -9 and rolling restart
// tests form their own.
func TestClusterShared(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	nodes := startClusterProcs(t, 3)
	t.Run("CallAgentClass", func(t *testing.T) { clusterCallAgentClass(t, nodes) })
	t.Run("ForwardAuthzClass", func(t *testing.T) { clusterForwardAuthzClass(t, nodes) })
	t.Run("ForwardLiveClass", func(t *testing.T) { clusterForwardLiveClass(t, nodes) })
	t.Run("TrustDomainClass", func(t *testing.T) { clusterTrustDomainClass(t, nodes) })
	t.Run("CounterExactlyN", func(t *testing.T) { clusterCounterExactlyN(t, nodes) })
	t.Run("LogsNameDeadMember", func(t *testing.T) { clusterLogsNameDeadMember(t, nodes) })
}

// clusterCounterExactlyN: N concurrent increments of a few sessions,
// spread over all three members, give exactly N: every session has one
// owner, the others forward to it. A drained member owns nothing and
// still answers by forwarding, without losing an increment. A sandbox is
// reached through every member (checkSandboxRouting).
func clusterCounterExactlyN(t *testing.T, nodes []*clusterNode) {
	deployCounter(t, nodes[0].client)
	const perSession, sessions = 30, 4
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, perSession*sessions)
	for s := range sessions {
		for i := range perSession {
			c := nodes[(s+i)%len(nodes)].client
			wg.Go(func() {
				if _, err := counterCall(ctx, c, fmt.Sprintf("c%d", s)); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for s := range sessions {
		// The next increment, through any member, sees all N.
		n, err := counterCall(ctx, nodes[s%len(nodes)].client, fmt.Sprintf("c%d", s))
		if err != nil || n != perSession+1 {
			t.Errorf("session c%d: stored %d after %d increments (%v)", s, n-1, perSession, err)
		}
	}

	// Drain n2: it hands every partition to the others and keeps
	// answering by forwarding; no increment is lost in the hand-off.
	res, err := nodes[2].client.DrainNode(ctx)
	if err != nil || res.Partitions != 0 {
		t.Fatalf("drain: %+v %v", res, err)
	}
	// Other members see n2's record as its heartbeats publish it, so
	// their view catches up with the drain within a few heartbeats.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		st, err := nodes[0].client.ClusterStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var stale *api.ClusterMember
		for i, m := range st.Members {
			if m.Node == "n2" && (!m.Draining || m.Partitions != 0) {
				stale = &st.Members[i]
			}
		}
		if stale == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after drain, n0 still sees: %+v", *stale)
		}
	}
	for s := range sessions {
		n, err := counterCall(ctx, nodes[2].client, fmt.Sprintf("c%d", s))
		if err != nil || n != perSession+2 {
			t.Errorf("session c%d through the drained member: %d, %v", s, n, err)
		}
	}
	checkSandboxRouting(t, nodes)
}

// clusterTrustDomainClass: the members are one trust domain. A token
// minted on one member works on the others; revoked on a third, it is
// refused on the first once the revocation has propagated (bounded); a
// data dir with its own CA refuses a join bundle.
func clusterTrustDomainClass(t *testing.T, nodes []*clusterNode) {
	ctx := context.Background()
	tok, err := nodes[0].client.CreateToken(ctx, api.TokenRequest{Subject: "user:alice", TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	as := make([]*client.Client, len(nodes))
	for i, nd := range nodes {
		as[i], err = client.New(nd.client.Server(), tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		w, err := as[i].WhoAmI(ctx)
		if err != nil || !strings.HasSuffix(w.Principal, "/user/alice") {
			t.Fatalf("token minted on n0, used on %s: %+v %v", nd.name, w, err)
		}
	}
	if err := nodes[2].client.RevokeToken(ctx, api.RevokeRequest{Token: tok.Token}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		_, err := as[0].WhoAmI(ctx)
		if api.IsKind(err, api.KindUnauthenticated) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("token revoked on n2 still accepted on n0 after %v: %v", time.Since(start), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("revocation on n2 refused on n0 after %v", time.Since(start).Round(time.Millisecond))
	for _, c := range as {
		if _, err := c.WhoAmI(ctx); !api.IsKind(err, api.KindUnauthenticated) {
			t.Errorf("revoked token on %s: %v", c.Server(), err)
		}
	}
	// The members' status agrees on the cluster.
	st, err := nodes[1].client.ClusterStatus(ctx)
	if err != nil || st.Cluster != "test" || len(st.Members) != 3 {
		t.Fatalf("status: %+v %v", st, err)
	}
	// A token minted for alice may not drain a node (admins only).
	if _, err := as[1].DrainNode(ctx); err == nil {
		t.Fatal("a revoked user token drained a node")
	}
	tok2, err := nodes[0].client.CreateToken(ctx, api.TokenRequest{Subject: "user:bob", TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := client.New(nodes[1].client.Server(), tok2.Token)
	if _, err := bob.DrainNode(ctx); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("a user drained a node: %v", err)
	}
}

// TestClusterKill9Class: under write load through every member, kill -9
// one member: no acknowledged write is lost (every acknowledgement carries
// a distinct count, none above what the store has), and the sessions it
// owned answer again on the others.
func TestClusterKill9Class(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	nodes := startClusterProcs(t, 3)
	deployCounter(t, nodes[0].client)
	const sessions = 12
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	survivors := nodes[:2]
	victim := nodes[2]
	var mu sync.Mutex
	acked := map[string][]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range sessions {
		id := fmt.Sprintf("k%d", s)
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Through every member, the victim included until it dies.
				n, err := counterCall(ctx, nodes[(s+i)%len(nodes)].client, id)
				if err != nil {
					continue // the victim's own connection, or its owner dying mid-request: not acknowledged
				}
				mu.Lock()
				acked[id] = append(acked[id], n)
				mu.Unlock()
			}
		})
	}
	waitAcked := func(min int) {
		for {
			mu.Lock()
			total := 0
			for _, v := range acked {
				total += len(v)
			}
			mu.Unlock()
			if total >= min {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAcked(100)
	victim.kill9(t)
	killed := time.Now()
	// Every session answers again through the survivors.
	for s := range sessions {
		if _, err := counterCall(ctx, survivors[s%2].client, fmt.Sprintf("k%d", s)); err != nil {
			t.Fatalf("session k%d after kill -9 of %s: %v", s, victim.name, err)
		}
	}
	t.Logf("every session answered again %v after kill -9", time.Since(killed).Round(time.Millisecond))
	mu.Lock()
	before := 0
	for _, v := range acked {
		before += len(v)
	}
	mu.Unlock()
	waitAcked(before + 50) // and keeps taking writes
	close(stop)
	wg.Wait()
	for s := range sessions {
		id := fmt.Sprintf("k%d", s)
		n, err := counterCall(ctx, survivors[0].client, id)
		if err != nil {
			t.Fatal(err)
		}
		checkAcked(t, id, acked[id], n-1)
	}
	checkNoPanics(t, nodes)
}

// checkAcked fails t if the counts acknowledged to clients for session id
// disagree with the count the store holds: one count acknowledged twice
// (a lost update), or more acknowledged than stored.
func checkAcked(t *testing.T, id string, acked []int, stored int) {
	t.Helper()
	got := slices.Sorted(slices.Values(acked))
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("session %s: two acknowledgements carry the same count (a lost update): %v", id, got)
	}
	if len(got) > stored || len(got) > 0 && got[len(got)-1] > stored {
		t.Errorf("session %s: acknowledged %v but the store has %d", id, got, stored)
	}
}

// checkNoPanics fails t if a member's output shows a panic or a data race.
func checkNoPanics(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	for _, nd := range nodes {
		if out := nd.out.String(); strings.Contains(out, "panic") || strings.Contains(out, "DATA RACE") {
			t.Fatalf("%s:\n%s", nd.name, out)
		}
	}
}

// ownerOfAgent returns the member that serves session id of agent.
func ownerOfAgent(t testing.TB, nodes []*clusterNode, agent, id string) int {
	t.Helper()
	for range 100 {
		resp, err := nodes[0].client.Call(context.Background(), agent, id, "POST", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			for i, nd := range nodes {
				if nd.name == resp.Header.Get(daemon.NodeHeader) {
					return i
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no owner of %s/%s", agent, id)
	return -1
}

func percentile(d []time.Duration, q float64) time.Duration {
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// echoAgent answers without touching the store, so what a call of it
// costs is mostly the way there and back (BenchmarkClusterForwarding).
const echoAgent = `export default { async fetch() { return new Response("ok"); } };`

// BenchmarkClusterForwarding measures, on a three-process loopback
// cluster, session calls served by the member the client talks to (its
// owner) against calls that member forwards to the owner (p50/p99 of each;
// the difference of the p50s is the forwarding overhead), and requests/s
// of 16 concurrent clients through one member against spread over all
// three. The two kinds of call alternate, so both see the same load.
// Counter calls write the store (a replicated write, milliseconds on a
// loaded machine, so their difference is noisy); echo calls (echo-*) do
// not, and show the overhead itself.
func BenchmarkClusterForwarding(b *testing.B) {
	nodes := startClusterProcs(b, 3)
	if err := deployJS(nodes[0].client, counterManifest, counterAgent); err != nil {
		b.Fatal(err)
	}
	if err := deployJS(nodes[0].client, `{"name":"echo","entry":"agent.js","limits":{"idle_seconds":3600}}`, echoAgent); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	kinds := []struct {
		agent, prefix string
		n             int
		call          func(*client.Client) error
	}{
		{"counter", "", 400, func(c *client.Client) error { _, err := counterCall(ctx, c, "bench"); return err }},
		{"echo", "echo-", 1000, func(c *client.Client) error { return echoCall(ctx, c, "bench") }},
	}
	b.ResetTimer()
	for range b.N {
		for _, k := range kinds {
			owner := ownerOfAgent(b, nodes, k.agent, "bench")
			other := (owner + 1) % 3
			var local, fwd []time.Duration
			for range k.n {
				for _, c := range []struct {
					cl  *client.Client
					lat *[]time.Duration
				}{{nodes[owner].client, &local}, {nodes[other].client, &fwd}} {
					start := time.Now()
					if err := k.call(c.cl); err != nil {
						b.Fatal(err)
					}
					*c.lat = append(*c.lat, time.Since(start))
				}
			}
			lp50, fp50 := percentile(local, 0.5), percentile(fwd, 0.5)
			b.ReportMetric(float64(lp50.Microseconds()), k.prefix+"local-p50-µs")
			b.ReportMetric(float64(percentile(local, 0.99).Microseconds()), k.prefix+"local-p99-µs")
			b.ReportMetric(float64(fp50.Microseconds()), k.prefix+"forwarded-p50-µs")
			b.ReportMetric(float64(percentile(fwd, 0.99).Microseconds()), k.prefix+"forwarded-p99-µs")
			b.ReportMetric(float64((fp50 - lp50).Microseconds()), k.prefix+"overhead-p50-µs")
		}
		for _, spread := range []bool{false, true} {
			var done atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for w := range 16 {
				c := nodes[0].client
				if spread {
					c = nodes[w%3].client
				}
				wg.Go(func() {
					for i := range 50 {
						if _, err := counterCall(ctx, c, fmt.Sprintf("t%d-%d", w, i%4)); err == nil {
							done.Add(1)
						}
					}
				})
			}
			wg.Wait()
			unit := "one-member-req/s"
			if spread {
				unit = "three-members-req/s"
			}
			b.ReportMetric(float64(done.Load())/time.Since(start).Seconds(), unit)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("load average %s", strings.TrimSpace(string(load)))
}

// BenchmarkClusterFailover kills one member of a three-process loopback
// cluster with kill -9 several times (restarting it after each) and reports
// how long until every session of a set answers again through the
// survivors (p50, p99 and max over the kills; the lease TTL is the
// default), with the load average the machine had.
func BenchmarkClusterFailover(b *testing.B) {
	nodes := startClusterProcsTTL(b, 3, cluster.DefaultTTL.String())
	if err := deployJS(nodes[0].client, counterManifest, counterAgent); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const kills, sessions = 10, 12
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		for k := range kills {
			victim := nodes[k%3]
			var survivors []*clusterNode
			for _, nd := range nodes {
				if nd != victim {
					survivors = append(survivors, nd)
				}
			}
			for s := range sessions {
				if _, err := counterCall(ctx, survivors[s%2].client, fmt.Sprintf("f%d", s)); err != nil {
					b.Fatal(err)
				}
			}
			victim.kill9(b)
			killed := time.Now()
			for s := range sessions {
				if _, err := counterCall(ctx, survivors[s%2].client, fmt.Sprintf("f%d", s)); err != nil {
					b.Fatal(err)
				}
			}
			times = append(times, time.Since(killed))
			victim.launch(b)
			victim.wait(b)
			waitBalanced(b, nodes)
		}
	}
	b.ReportMetric(float64(percentile(times, 0.5).Milliseconds()), "failover-p50-ms")
	b.ReportMetric(float64(percentile(times, 0.99).Milliseconds()), "failover-p99-ms")
	b.ReportMetric(float64(percentile(times, 1).Milliseconds()), "failover-max-ms")
	load, _ := os.ReadFile("/proc/loadavg")
	b.Logf("failover times: %v; load average %s", times, strings.TrimSpace(string(load)))
}
