package cluster_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// callNode is a real Node whose Run echoes the call and counts it.
type callNode struct {
	name string
	node *cluster.Node
	runs atomic.Int32
}

// startCallNodes starts n Nodes (peer listeners with node SVIDs, members
// on one real store bucket) and waits until every partition has an owner
// all of them see.
func startCallNodes(t *testing.T, n int) ([]*callNode, *identity.CA) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kv, err := st.KV(ctx, "cluster", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca := storetest.NewCA(t, "cluster.test")
	var nodes []*callNode
	byName := sync.Map{}
	for i := range n {
		cn := &callNode{name: fmt.Sprintf("node-%d", i)}
		run := func(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error) {
			switch agent {
			case "deny":
				return isolate.Response{}, api.FieldErrorf(api.KindForbidden, "agent", "agent %s is another tenant's", agent)
			case "hop": // the callee calls on (a new call, to another member)
				self, _ := byName.Load(cn.name)
				return self.(*callNode).node.CallRemote(ctx, "echo", string(req.Body), req)
			}
			cn.runs.Add(1)
			return isolate.Response{Status: 201, Headers: [][2]string{{"Served-By", cn.name}},
				Body: []byte(fmt.Sprintf("%s %s %s/%s %s", req.Method, req.URL, agent, id, req.Body))}, nil
		}
		local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Served-By", "local-"+cn.name)
		})
		nd, err := cluster.Listen(cluster.NodeConfig{Node: cn.name, PeerAddr: "127.0.0.1:0",
			PeerTLS: storetest.PeerTLS(t, ca, cn.name), Local: local, Run: run})
		if err != nil {
			t.Fatal(err)
		}
		cn.node = nd
		byName.Store(cn.name, cn)
		t.Cleanup(func() {
			_ = nd.Shutdown(context.Background())
			nd.Close()
		})
		if err := nd.Start(ctx, cluster.Config{Node: cn.name, KV: kv, Heartbeat: heartbeat, TTL: ttl}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, cn)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		settled := true
		for p := range cluster.DefaultPartitions {
			var owners int
			for _, cn := range nodes {
				if _, mine := cn.node.Owned(p); mine {
					owners++
				}
				if _, _, seen := cn.node.OwnerOf(p); !seen {
					settled = false
				}
			}
			settled = settled && owners == 1
		}
		for _, cn := range nodes {
			if cn.node.Member().OwnedCount() == 0 {
				settled = false
			}
		}
		if settled {
			return nodes, ca
		}
		if time.Now().After(deadline) {
			t.Fatal("partitions did not settle")
		}
	}
}

// sessionOwnedBy finds a session id of agent whose partition owner is
// owner (as every node sees it).
func sessionOwnedBy(t *testing.T, owner *callNode, agent, prefix string) string {
	t.Helper()
	for i := range 10000 {
		id := fmt.Sprintf("%s%d", prefix, i)
		if _, mine := owner.node.Owns(agent, id); mine {
			return id
		}
	}
	t.Fatalf("no session of %s owned by %s", agent, owner.name)
	return ""
}

// TestPeerCallClass: a call into a session another member owns
// (CallRemote) runs once on the owner, its answer (status, headers,
// body) and its problems (kind, field, Retry-After) come back as they
// are; a call the callee makes in turn is a new call; the peer route takes only members
// and refuses malformed calls with 400 without running anything; the
// public side never serves it; a member that does not own the session
// answers 503 with Retry-After; an owner that left is unavailable.
func TestPeerCallClass(t *testing.T) {
	nodes, ca := startCallNodes(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := nodes[0], nodes[1]
	onB := sessionOwnedBy(t, b, "echo", "s")
	req := isolate.Request{Method: "POST", URL: "http://echo.agents.internal/p?q=1", Headers: [][2]string{{"X-A", "1"}}, Body: []byte("hello")}
	for i := range 5 {
		resp, err := callRetrying(ctx, a, "echo", onB, req)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if want := "POST http://echo.agents.internal/p?q=1 echo/" + onB + " hello"; resp.Status != 201 || string(resp.Body) != want || resp.Header("Served-By") != b.name {
			t.Fatalf("call %d: %d %q served by %q", i, resp.Status, resp.Body, resp.Header("Served-By"))
		}
	}
	if a.runs.Load() != 0 || b.runs.Load() != 5 {
		t.Fatalf("runs: %s %d, %s %d; want every call once on the owner", a.name, a.runs.Load(), b.name, b.runs.Load())
	}
	// A problem of the owner comes back as it is.
	_, err := callRetrying(ctx, a, "deny", sessionOwnedBy(t, b, "deny", "d"), req)
	if p := api.AsProblem(err); !api.IsKind(err, api.KindForbidden) || p.Field != "agent" || !strings.Contains(p.Detail, "another tenant") {
		t.Fatalf("owner's refusal: %v", err)
	}
	// The callee's session calls a session of the caller's member in
	// turn: a new call, served there once.
	hopReq := req
	hopReq.Body = []byte(sessionOwnedBy(t, a, "echo", "h"))
	resp, err := callRetrying(ctx, a, "hop", sessionOwnedBy(t, b, "hop", "h"), hopReq)
	if err != nil || resp.Header("Served-By") != a.name || a.runs.Load() != 1 {
		t.Fatalf("a call made by the callee: %v served by %q, runs on %s %d", err, resp.Header("Served-By"), a.name, a.runs.Load())
	}
	// A session the caller owns itself is not sent anywhere.
	if _, err := a.node.CallRemote(ctx, "echo", sessionOwnedBy(t, a, "echo", "m"), req); !api.IsKind(err, api.KindUnavailable) {
		t.Fatalf("own session: %v", err)
	}
	if a.runs.Load() != 1 || b.runs.Load() != 5 {
		t.Fatalf("runs after refusals: %d %d", a.runs.Load(), b.runs.Load())
	}

	// The peer route: members only, malformed calls 400, a session this
	// member does not own 503 with Retry-After.
	member := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: storetest.PeerTLS(t, storetest.NewCA(t, "cluster.test"), "node-x")}}
	raw := func(c *http.Client, method, body string) (*http.Response, error) {
		r, _ := http.NewRequestWithContext(ctx, method, "https://"+b.node.PeerAddr()+"/_peer/v1/call", strings.NewReader(body))
		return c.Do(r)
	}
	if resp, err := raw(member, "POST", `{"agent":"echo","session":"`+onB+`"}`); err == nil {
		resp.Body.Close()
		t.Fatalf("a member of another CA reached the peer route: %d", resp.StatusCode)
	}
	nocert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := raw(nocert, "POST", `{"agent":"echo","session":"`+onB+`"}`); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate reached the peer route: %d", resp.StatusCode)
	}
	peer := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: storetest.PeerTLS(t, ca, "node-y")}}
	for _, c := range []struct {
		method, body string
		status       int
	}{
		{"GET", "", 405},
		{"POST", "", 400},
		{"POST", "{", 400},
		{"POST", "[]", 400},
		{"POST", `{"agent":"echo"}`, 400},
		{"POST", `{"session":"x"}`, 400},
		{"POST", `{"agent":"echo","session":"` + onB + `","extra":1}`, 400},
		{"POST", `{"agent":"echo","session":"` + onB + `"} {"agent":"echo","session":"` + onB + `"}`, 400},
		{"POST", `{"agent":"echo","session":"` + onB + `","body":"not base64!"}`, 400},
		{"POST", `{"agent":"echo","session":"` + sessionOwnedBy(t, a, "echo", "n") + `"}`, 503},
	} {
		resp, err := raw(&peer, c.method, c.body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != api.ProblemContentType ||
			c.status == 503 && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %q: %d %q, want %d problem", c.method, c.body, resp.StatusCode, resp.Header.Get("Content-Type"), c.status)
		}
	}
	if b.runs.Load() != 5 {
		t.Fatalf("refused calls ran: %d", b.runs.Load())
	}
	// The public side serves the path as any other (the router's 404).
	pub := httptest.NewServer(b.node.Handler())
	defer pub.Close()
	presp, err := http.Post(pub.URL+"/_peer/v1/call", "application/json", strings.NewReader(`{"agent":"echo","session":"`+onB+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, presp.Body)
	presp.Body.Close()
	if presp.Header.Get("Served-By") != "local-"+b.name || b.runs.Load() != 5 {
		t.Fatalf("public /_peer/v1/call: served by %q, runs %d", presp.Header.Get("Served-By"), b.runs.Load())
	}

	// The owner leaves: its sessions are unavailable (503) until taken.
	if err := b.node.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.node.CallRemote(ctx, "echo", onB, req); !api.IsKind(err, api.KindUnavailable) {
		t.Fatalf("after the owner left: %v", err)
	}
}

// callRetrying is CallRemote retried while it answers 503 with
// Retry-After before the call was sent (a lease changing hands on a
// loaded machine, 1.2 s TTL); such an answer means nothing ran.
func callRetrying(ctx context.Context, from *callNode, agent, id string, req isolate.Request) (isolate.Response, error) {
	for {
		resp, err := from.node.CallRemote(ctx, agent, id, req)
		p := api.AsProblem(err)
		if err == nil || !api.IsKind(err, api.KindUnavailable) || p.RetryAfterSeconds == 0 || ctx.Err() != nil {
			return resp, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
