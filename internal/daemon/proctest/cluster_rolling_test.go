package proctest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/cluster"
)

// stop stops the node's process with SIGTERM (a graceful shutdown) and
// waits for it to exit.
func (n *clusterNode) stop(t testing.TB) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not stop after SIGTERM\n%s", n.name, n.out)
	}
}

// rotation is the load balancer in front of a test cluster: it sends each
// call to a member in rotation, and takes a member out (waiting for its
// calls in flight to finish) before the operator drains and restarts it.
type rotation struct {
	mu       sync.Mutex
	cond     *sync.Cond
	nodes    []*clusterNode
	out      []bool
	inflight []int
	next     int
}

func newRotation(nodes []*clusterNode) *rotation {
	r := &rotation{nodes: nodes, out: make([]bool, len(nodes)), inflight: make([]int, len(nodes))}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// pick returns the next member in rotation and its index; done(i) ends
// the call.
func (r *rotation) pick() (int, *client.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		r.next = (r.next + 1) % len(r.nodes)
		if !r.out[r.next] {
			r.inflight[r.next]++
			return r.next, r.nodes[r.next].client
		}
	}
}

func (r *rotation) done(i int) {
	r.mu.Lock()
	r.inflight[i]--
	r.cond.Broadcast()
	r.mu.Unlock()
}

// take takes member i out of rotation once its calls in flight are done.
func (r *rotation) take(i int) {
	r.mu.Lock()
	r.out[i] = true
	for r.inflight[i] > 0 {
		r.cond.Wait()
	}
	r.mu.Unlock()
}

// put puts member i back into rotation (with its new client).
func (r *rotation) put(i int) {
	r.mu.Lock()
	r.out[i] = false
	r.mu.Unlock()
}

// TestClusterRollingRestart: while a client keeps incrementing sessions
// through a load balancer, retrying only on 503 with Retry-After, every
// member in turn is taken out of rotation, drained (`agentcloud node
// drain`: its partitions handed to the others), stopped with SIGTERM,
// started again and put back. No call fails, no acknowledged increment is
// lost or acknowledged twice, and every member owns partitions again at
// the end.
func TestClusterRollingRestart(t *testing.T) {
	t.Parallel() // its own processes and ports; mostly waits on restarts
	if testing.Short() {
		t.Skip("spawns daemon processes; skipped in -short")
	}
	nodes := startClusterProcs(t, 3)
	deployCounter(t, nodes[0].client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lb := newRotation(nodes)
	const sessions = 8
	var mu sync.Mutex
	acked := map[string][]int{}
	var failed []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range sessions {
		id := fmt.Sprintf("r%d", s)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i, c := lb.pick()
				n, err := counterCall(ctx, c, id)
				lb.done(i)
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s via %s: %v", id, nodes[i].name, err))
				} else {
					acked[id] = append(acked[id], n)
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, v := range acked {
			n += len(v)
		}
		return n
	}
	progress := func(more int) {
		want := total() + more
		for total() < want {
			if ctx.Err() != nil {
				t.Fatalf("no progress: %d of %d increments", total(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	progress(50)
	for i, nd := range nodes {
		started := time.Now()
		lb.take(i)
		res, err := nd.client.DrainNode(ctx)
		if err != nil || res.Partitions != 0 {
			t.Fatalf("drain %s: %+v %v", nd.name, res, err)
		}
		nd.stop(t)
		nd.launch(t)
		nd.wait(t)
		waitBalanced(t, nodes)
		lb.put(i)
		t.Logf("%s drained, restarted and back in %v", nd.name, time.Since(started).Round(time.Millisecond))
		progress(50)
	}
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d calls failed, first: %s", len(failed), failed[0])
	}
	for s := range sessions {
		id := fmt.Sprintf("r%d", s)
		n, err := counterCall(ctx, nodes[s%3].client, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(acked[id]) == 0 {
			t.Errorf("session %s: no increment acknowledged", id)
		}
		checkAcked(t, id, acked[id], n-1)
	}
	t.Logf("%d increments acknowledged, none failed", total())
	checkNoPanics(t, nodes)
}

// checkSandboxRouting: a sandbox made through one member has an id naming
// it, and every other member routes its calls there (describe, write a
// file, read it back, delete) and lists it in E2B's listing; once deleted
// it is 404 through any member.
// A node without sandboxes (no usable cgroups) skips this part.
func checkSandboxRouting(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sb, err := nodes[0].client.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 300})
	if err != nil {
		if api.IsKind(err, api.KindUnavailable) || api.IsKind(err, api.KindConflict) {
			t.Logf("sandboxes not available on this machine: %v", err)
			return
		}
		t.Fatal(err)
	}
	if !strings.HasPrefix(sb.ID, "sb-"+nodes[0].name+"-") {
		t.Fatalf("sandbox made on %s has id %q", nodes[0].name, sb.ID)
	}
	for _, nd := range nodes {
		if got, err := nd.client.Sandbox(ctx, sb.ID); err != nil || got.ID != sb.ID {
			t.Fatalf("describe %s through %s: %+v %v", sb.ID, nd.name, got, err)
		}
	}
	checkE2BListAcrossMembers(ctx, t, nodes, sb.ID)
	if _, err := nodes[1].client.WriteFile(ctx, sb.ID, "/workspace/a.txt", strings.NewReader("through n1"), 0); err != nil {
		t.Fatalf("write through %s: %v", nodes[1].name, err)
	}
	rc, err := nodes[2].client.ReadFile(ctx, sb.ID, "/workspace/a.txt")
	if err != nil {
		t.Fatalf("read through %s: %v", nodes[2].name, err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "through n1" {
		t.Fatalf("read back %q", b)
	}
	if err := nodes[2].client.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatalf("delete through %s: %v", nodes[2].name, err)
	}
	for _, nd := range nodes {
		if _, err := nd.client.Sandbox(ctx, sb.ID); !api.IsKind(err, api.KindNotFound) {
			t.Fatalf("deleted sandbox through %s: %v, want not found", nd.name, err)
		}
	}
}

// checkE2BListAcrossMembers: with sandbox first on nodes[0] and one more
// made on nodes[1], E2B's listing (v1 and v2) through every member lists
// both, with X-Total-Running counting both.
func checkE2BListAcrossMembers(ctx context.Context, t *testing.T, nodes []*clusterNode, first string) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("E2B list checks took %v", time.Since(start).Round(time.Millisecond)) }()
	second, err := nodes[1].client.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nodes[1].client.DeleteSandbox(context.Background(), second.ID) }()
	key, err := nodes[0].client.CreateE2BKey(ctx, api.E2BKeyRequest{Name: "list"})
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range nodes {
		for _, path := range []string{"/e2b/sandboxes", "/e2b/v2/sandboxes"} {
			var got []string
			running := ""
			// Poll: the key and the members' records reach every member
			// through the store (generous bound for a loaded machine).
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
				req, _ := http.NewRequestWithContext(ctx, "GET", nd.client.Server()+path, nil)
				req.Header.Set("X-API-Key", key.Key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var l []struct {
					SandboxID string `json:"sandboxID"`
				}
				if resp.StatusCode == 200 {
					_ = json.NewDecoder(resp.Body).Decode(&l)
				}
				resp.Body.Close()
				got = got[:0]
				for _, s := range l {
					got = append(got, s.SandboxID)
				}
				running = resp.Header.Get("X-Total-Running")
				if slices.Contains(got, first) && slices.Contains(got, second.ID) && running == "2" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("E2B %s through %s: %d %v running=%q unreachable=%q, want %s and %s", path, nd.name, resp.StatusCode, got,
						running, resp.Header.Get(cluster.UnreachableHeader), first, second.ID)
				}
			}
		}
	}
}
