package daemon_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/coder/websocket"
)

const liveJS = `
const te = new TextEncoder();
let n = 0;
export default {
	async fetch(req, env, ctx) {
		const p = new URL(req.url).pathname;
		if (p === "/sse") return new Response(new ReadableStream({
			start(c) { c.enqueue(te.encode("data: first\n\n")); },
			pull(c) { return new Promise((res) => setTimeout(() => { c.enqueue(te.encode("data: later\n\n")); res(); }, 60000)); },
		}), { headers: { "content-type": "text/event-stream" } });
		const [client, server] = Object.values(new WebSocketPair());
		ctx.acceptWebSocket(server);
		return new Response(null, { status: 101, webSocket: client });
	},
	async webSocketMessage(ws, msg) { ws.send(msg + " " + (++n)); },
};`

// TestLiveTrafficThroughServe: through the whole serve stack (front door,
// authentication, router), a streamed response reaches the client before
// it ends, and a WebSocket is accepted only with a token and answers.
func TestLiveTrafficThroughServe(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	d, c := startDaemonWith(t, cfg, nil)
	tok, err := os.ReadFile(filepath.Join(cfg.Data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	bearer := http.Header{"Authorization": {"Bearer " + strings.TrimSpace(string(tok))}}
	if err := deployJS(c, `{"name":"live","entry":"agent.js"}`, liveJS); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	resp, err := c.Call(ctx, "live", "s1", "GET", "/sse", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || line != "data: first\n" || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("first event %q %v %v", line, err, resp.Header)
	}

	url := "ws://" + d.Addr() + "/agents/live/sessions/s2/chat"
	if conn, r, err := websocket.Dial(ctx, url, nil); err == nil || r == nil || r.StatusCode != http.StatusUnauthorized {
		if conn != nil {
			conn.CloseNow()
		}
		t.Fatalf("without a token: %v %v, want 401", r, err)
	}
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: bearer})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, want := range []string{"a 1", "b 2"} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(want[:1])); err != nil {
			t.Fatal(err)
		}
		if _, b, err := conn.Read(ctx); err != nil || string(b) != want {
			t.Fatalf("reply %q %v, want %q", b, err, want)
		}
	}
}
