package proctest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/daemon/daemontest"
	"github.com/coder/websocket"
)

// clusterForwardAuthzClass (TestClusterShared): forwarding lets no caller
// skip authorization. For a session of dave's agent on each member,
// through every member: no token and a forged one are 401, another
// tenant's (erin's) token is refused, also when the request claims to come
// from a member (Agentcloud-Forwarded-By) or names the owner's node; each
// refusal is the owner's (it authorizes every request, forwarded or not),
// and nothing ran: dave's next call counts on from his last. Dave's own
// calls through every member are served by the owner.
func clusterForwardAuthzClass(t *testing.T, nodes []*clusterNode) {
	for _, nd := range nodes {
		daemontest.RegisterAdmin(t, nd.client)
	}
	dave := make([]*client.Client, len(nodes))
	for i := range nodes {
		dave[i] = memberUserClient(t, nodes, i, "user:dave")
	}
	tok, err := nodes[0].client.CreateToken(context.Background(), api.TokenRequest{Subject: "user:erin", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	erinToken := "Bearer " + tok.Token
	if err := deployJS(dave[0], relayManifest("dagent"), relayAgent); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	hostile := []struct {
		name, auth string
		header     [2]string
		want       []int
	}{
		{"no token", "", [2]string{}, []int{401}},
		{"forged token", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln", [2]string{}, []int{401}},
		{"no token, posing as a member", "", [2]string{cluster.ForwardedHeader, "n0"}, []int{401}},
		{"another tenant", erinToken, [2]string{}, []int{403, 404}},
		{"another tenant, posing as a member", erinToken, [2]string{cluster.ForwardedHeader, "n1"}, []int{403, 404}},
		{"another tenant, naming the owner", erinToken, [2]string{daemon.NodeHeader, "n2"}, []int{403, 404}},
	}
	for _, owner := range nodes {
		id := sessionOn(t, dave[0], "dagent", owner.name, "fz")
		stored := 0
		for i, entry := range nodes {
			code, body, served, err := relayCall(ctx, dave[i], "dagent", id, "POST", "")
			stored++
			if err != nil || code != 200 || served != owner.name || !strings.Contains(body, fmt.Sprintf(`"stored":%d`, stored)) {
				t.Fatalf("dave's call to dagent/%s (owner %s) via %s: %d %s served by %q %v, want stored %d",
					id, owner.name, entry.name, code, body, served, err, stored)
			}
			for _, h := range hostile {
				code, served := rawSessionPost(ctx, t, entry.client.Server(), "dagent", id, h.auth, h.header)
				if !slices.Contains(h.want, code) || served != owner.name {
					t.Errorf("%s, dagent/%s (owner %s) via %s: %d from %q, want %v from the owner",
						h.name, id, owner.name, entry.name, code, served, h.want)
				}
			}
		}
		// Nothing the refused calls sent ran: the count goes on from dave's.
		code, body, _, err := relayCall(ctx, dave[2], "dagent", id, "POST", "")
		if err != nil || code != 200 || !strings.Contains(body, fmt.Sprintf(`"stored":%d`, stored+1)) {
			t.Fatalf("dagent/%s after the refused calls: %d %s %v, want stored %d", id, code, body, err, stored+1)
		}
	}
}

// rawSessionPost POSTs to agent/id through server with the Authorization
// value auth (none if empty) and header, retrying only 503 with
// Retry-After, and answers the status and the member that answered.
func rawSessionPost(ctx context.Context, t *testing.T, server, agent, id, auth string, header [2]string) (int, string) {
	t.Helper()
	for {
		req, err := http.NewRequestWithContext(ctx, "POST", server+"/agents/"+agent+"/sessions/"+id+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if header[0] != "" {
			req.Header.Set(header[0], header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		return resp.StatusCode, resp.Header.Get(daemon.NodeHeader)
	}
}

// forwardLiveJS streams server-sent events (the second never comes) and
// accepts a WebSocket that answers each message with a count.
const forwardLiveJS = `
const te = new TextEncoder();
let n = 0;
export default {
	async fetch(req, env, ctx) {
		if (new URL(req.url).pathname === "/sse") return new Response(new ReadableStream({
			start(c) { c.enqueue(te.encode("data: first\n\n")); },
			pull(c) { return new Promise(() => {}); },
		}), { headers: { "content-type": "text/event-stream" } });
		const [client, server] = Object.values(new WebSocketPair());
		ctx.acceptWebSocket(server);
		return new Response(null, { status: 101, webSocket: client });
	},
	async webSocketMessage(ws, msg) { ws.send(msg + " " + (++n)); },
};`

// clusterForwardLiveClass (TestClusterShared): a session's live traffic
// through a member that does not own it: a stream of server-sent events
// delivers its first event while the owner holds the stream open, and a
// WebSocket is refused without a token and, with one, upgrades at the
// owner and answers both ways.
func clusterForwardLiveClass(t *testing.T, nodes []*clusterNode) {
	if err := deployJS(nodes[0].client, `{"name":"flive","entry":"agent.js","limits":{"idle_seconds":3600}}`, forwardLiveJS); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tok, err := os.ReadFile(filepath.Join(nodes[0].data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	bearer := http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(tok))}}
	for i := range 12 {
		id := fmt.Sprintf("live%d", i)
		entry := nodes[i%len(nodes)]
		resp, err := entry.client.Call(ctx, "flive", id, "GET", "/sse", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		owner := resp.Header.Get(daemon.NodeHeader)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			continue // a lease changing hands; the next session
		}
		if err != nil || line != "data: first\n" {
			t.Fatalf("flive/%s via %s (owner %s): %d %q %v", id, entry.name, owner, resp.StatusCode, line, err)
		}
		if owner == entry.name {
			continue // served where it arrived; the point is the forwarded ones
		}
		url := "ws://" + strings.TrimPrefix(entry.client.Server(), "http://") + "/agents/flive/sessions/" + id + "/chat"
		if conn, r, err := websocket.Dial(ctx, url, nil); err == nil || r == nil || r.StatusCode != http.StatusUnauthorized {
			if conn != nil {
				conn.CloseNow()
			}
			t.Fatalf("a WebSocket without a token via %s: %v %v, want 401", entry.name, r, err)
		}
		conn, r, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: bearer})
		if err != nil {
			t.Fatalf("a WebSocket to flive/%s via %s (owner %s): %v", id, entry.name, owner, err)
		}
		if got := r.Header.Get(daemon.NodeHeader); got != owner {
			conn.CloseNow()
			t.Fatalf("the WebSocket via %s upgraded at %q, want the owner %s", entry.name, got, owner)
		}
		for _, want := range []string{"a 1", "b 2"} {
			if err := conn.Write(ctx, websocket.MessageText, []byte(want[:1])); err != nil {
				t.Fatal(err)
			}
			if _, b, err := conn.Read(ctx); err != nil || string(b) != want {
				t.Fatalf("reply %q %v, want %q", b, err, want)
			}
		}
		conn.Close(websocket.StatusNormalClosure, "")
		return
	}
	t.Fatal("no session was forwarded")
}
