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
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/daemon/daemontest"
)

// relayAgent counts POSTs in its state; GET answers without a write (and
// logs a line); with
// ?to=AGENT/SESSION it increments that session through call_agent and
// answers the tool's result (errors as 599 "Name: message").
const relayAgent = `export default {
  async fetch(req, env) {
    const to = new URL(req.url).searchParams.get("to");
    if (to) {
      const [agent, session] = to.split("/");
      try {
        return Response.json(await env.tools.call("call_agent", {agent, session, method: "POST", path: "/"}));
      } catch (e) { return new Response(e.name + ": " + e.message, {status: 599}); }
    }
    if (req.method === "GET") { console.log("here"); return new Response("here"); }
    const n = ((await env.state.get("n")) || 0) + 1;
    await env.state.put("n", n);
    return Response.json({global: 0, stored: n});
  }
};`

func relayManifest(name string) string {
	return `{"name":"` + name + `","entry":"agent.js","tools":["call_agent"],"limits":{"idle_seconds":3600}}`
}

// relayCall calls agent/id through c (GET, or POST with ?to=), retrying
// only on 503 with Retry-After, and answers the status, body and the
// member that served it.
func relayCall(ctx context.Context, c *client.Client, agent, id, method, to string) (int, string, string, error) {
	path := "/"
	if to != "" {
		path = "/?to=" + to
	}
	for {
		resp, err := c.Call(ctx, agent, id, method, path, nil, nil)
		if err != nil {
			return 0, "", "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
			select {
			case <-ctx.Done():
				return 0, "", "", fmt.Errorf("%s: %w", b, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		return resp.StatusCode, string(b), resp.Header.Get(daemon.NodeHeader), nil
	}
}

// sessionOn finds a session of agent whose owner is member node (asking
// through c with GETs, which write nothing).
func sessionOn(t *testing.T, c *client.Client, agent, node, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i := range 200 {
		id := fmt.Sprintf("%s%d", prefix, i)
		code, body, served, err := relayCall(ctx, c, agent, id, "GET", "")
		if err != nil || code != 200 {
			t.Fatalf("GET %s/%s: %d %s %v", agent, id, code, body, err)
		}
		if served == node {
			return id
		}
	}
	t.Fatalf("no session of %s on %s", agent, node)
	return ""
}

// clusterCallAgentClass: call_agent from a session on one member to a
// session another member owns runs in the callee once per call, however
// many callers on however many members call it at once (the increments
// the callee acknowledges are exactly 1..N); a tenant's call into another
// tenant's session is refused on the remote path as on the local one, and
// runs nothing; a tenant's own remote callee answers.
func clusterCallAgentClass(t *testing.T, nodes []*clusterNode) {
	for _, nd := range nodes {
		daemontest.RegisterAdmin(t, nd.client)
	}
	// A session may call the sessions of its own owner's agents (a
	// tenant's agents call each other, another tenant's are refused).
	if _, err := nodes[0].client.ApplyPolicies(context.Background(), `@id("tenant-sessions-call-each-other")
permit (principal is Session, action == Action::"session.call", resource is Session)
when { principal has owner && resource has owner && principal.owner == resource.owner };`); err != nil {
		t.Fatal(err)
	}
	// carol's agent, reached through every member.
	carol := make([]*client.Client, len(nodes))
	for i := range nodes {
		carol[i] = memberUserClient(t, nodes, i, "user:carol")
	}
	admin := carol[0]
	if err := deployJS(admin, relayManifest("relay"), relayAgent); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	callee := sessionOn(t, admin, "relay", "n1", "callee")
	callers := []string{sessionOn(t, admin, "relay", "n0", "a"), sessionOn(t, admin, "relay", "n2", "b")}

	const perCaller = 12
	var mu sync.Mutex
	var stored []int
	var wg sync.WaitGroup
	errs := make(chan error, 2*perCaller)
	for ci, caller := range callers {
		for i := range perCaller {
			entry := carol[(ci+i)%len(nodes)]
			wg.Go(func() {
				code, body, _, err := relayCall(ctx, entry, "relay", caller, "POST", "relay/"+callee)
				if err != nil || code != 200 {
					errs <- fmt.Errorf("relay/%s → relay/%s: %d %s %v", caller, callee, code, body, err)
					return
				}
				var res struct {
					Structured struct {
						Status int
						Body   string
					}
				}
				var cr counterResp
				if err := json.Unmarshal([]byte(body), &res); err != nil || res.Structured.Status != 200 || json.Unmarshal([]byte(res.Structured.Body), &cr) != nil {
					errs <- fmt.Errorf("call_agent result %s: %v", body, err)
					return
				}
				mu.Lock()
				stored = append(stored, cr.Stored)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(stored)
	for i, n := range stored {
		if n != i+1 {
			t.Fatalf("the callee acknowledged %v, want each of 1..%d once", stored, 2*perCaller)
		}
	}
	if code, body, _, err := relayCall(ctx, admin, "relay", callee, "POST", ""); err != nil || code != 200 || !strings.Contains(body, fmt.Sprintf(`"stored":%d`, 2*perCaller+1)) {
		t.Fatalf("the callee after %d remote calls: %d %s %v", 2*perCaller, code, body, err)
	}

	// Tenants: alice's session calls bob's sessions (one owned by her
	// session's member, one by another) and her own remote session.
	alice, bob := memberUserClient(t, nodes, 1, "user:alice"), memberUserClient(t, nodes, 2, "user:bob")
	if err := deployJS(alice, relayManifest("arelay"), relayAgent); err != nil {
		t.Fatal(err)
	}
	if err := deployJS(bob, relayManifest("brelay"), relayAgent); err != nil {
		t.Fatal(err)
	}
	from := sessionOn(t, alice, "arelay", "n0", "from")
	bobLocal, bobRemote := sessionOn(t, bob, "brelay", "n0", "local"), sessionOn(t, bob, "brelay", "n1", "remote")
	refusal := func(to string) string {
		t.Helper()
		code, body, _, err := relayCall(ctx, alice, "arelay", from, "POST", to)
		if err != nil || code != 599 {
			t.Fatalf("alice's session calling %s: %d %s %v, want refused", to, code, body, err)
		}
		name, _, _ := strings.Cut(body, ":")
		return name
	}
	local, remote := refusal("brelay/"+bobLocal), refusal("brelay/"+bobRemote)
	if local != remote {
		t.Errorf("another tenant's session: refused as %q locally but %q remotely", local, remote)
	}
	// The call_agent tool as alice herself (not a session), into bob's
	// remote session: refused too.
	if res, err := alice.CallTool(ctx, "call_agent", json.RawMessage(`{"agent":"brelay","session":"`+bobRemote+`","method":"POST"}`)); err == nil && !res.IsError {
		t.Errorf("alice's call_agent tool into bob's remote session: %+v", res)
	}
	for _, id := range []string{bobLocal, bobRemote} {
		if code, body, _, err := relayCall(ctx, bob, "brelay", id, "POST", ""); err != nil || code != 200 || !strings.Contains(body, `"stored":1`) {
			t.Errorf("bob's session %s after alice's refused calls: %d %s %v, want its first increment", id, code, body, err)
		}
	}
	own := sessionOn(t, alice, "arelay", "n2", "own")
	if code, body, _, err := relayCall(ctx, alice, "arelay", from, "POST", "arelay/"+own); err != nil || code != 200 || !strings.Contains(body, `\"stored\":1`) {
		t.Errorf("alice's session calling her own session on n2: %d %s %v", code, body, err)
	}
	checkClusterLogs(t, nodes, carol, bob, []string{callers[0], callee, callers[1]})
}

// memberUserClient mints a token for subject and returns a client of it
// talking to member i.
func memberUserClient(t *testing.T, nodes []*clusterNode, i int, subject string) *client.Client {
	t.Helper()
	tok, err := nodes[0].client.CreateToken(context.Background(), api.TokenRequest{Subject: subject, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(nodes[i].client.Server(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
