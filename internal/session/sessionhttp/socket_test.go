package sessionhttp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/coder/websocket"
)

// socketJS accepts WebSockets both ways: /chat with the hibernation API
// (ctx.acceptWebSocket, webSocketMessage), /plain with ws.accept() and
// listeners. Its counter lives in the heap only.
const socketJS = `
let count = 0, closes = [];
export default {
	async fetch(req, env, ctx) {
		const p = new URL(req.url).pathname;
		if (p === "/closes") return new Response(closes.join(","));
		if (req.headers.get("upgrade") !== "websocket") return new Response("want a websocket", { status: 426 });
		const [client, server] = Object.values(new WebSocketPair());
		if (p === "/chat") { ctx.acceptWebSocket(server, ["chat"]); server.send("welcome"); }
		else {
			server.accept();
			server.addEventListener("message", (ev) => server.send("plain: " + ev.data));
			server.addEventListener("close", (ev) => closes.push("plain " + ev.code));
		}
		return new Response(null, { status: 101, webSocket: client });
	},
	async webSocketMessage(ws, msg) {
		if (typeof msg !== "string") { ws.send(msg); return; }
		count++;
		if (msg === "bye") { ws.close(1000, "bye"); return; }
		ws.send("echo " + msg + " #" + count + " of " + env_sockets());
	},
	async webSocketClose(ws, code, reason) { closes.push(code + " " + reason); },
};
let env_sockets = () => "?";
`

func dial(t *testing.T, url string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
}

func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func send(t *testing.T, c *websocket.Conn, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// TestWebSocketClass: a session accepts WebSockets over loopback with a real
// Go client: echo with the hibernation API and with ws.accept(); the
// session hibernates between messages and still answers with its heap
// intact; an oversized message closes the socket with 1009; a principal
// who may not reach the session cannot attach; a request that is not a
// complete upgrade gets 426.
func TestWebSocketClass(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.deploy(t, "alice", agentFiles("sock", socketJS)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	wsURL := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/agents/sock/sessions/s1"
	alice := http.Header{"X-Principal": {"alice"}}

	t.Run("echo across hibernation", func(t *testing.T) {
		c, _, err := dial(t, wsURL+"/chat", alice)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if got := readText(t, c); got != "welcome" {
			t.Fatalf("first message = %q", got)
		}
		for i, msg := range []string{"a", "b", "c"} {
			send(t, c, websocket.MessageText, []byte(msg))
			want := "echo " + msg + " #" + string(rune('1'+i)) + " of ?"
			if got := readText(t, c); got != want {
				t.Fatalf("reply = %q, want %q", got, want)
			}
			if err := e.m.Hibernate(context.Background(), "sock", "s1"); err != nil {
				t.Fatal(err)
			}
			if st := e.m.Stats(); st.Live != 0 {
				t.Fatalf("%d live sessions after hibernate", st.Live)
			}
		}
		send(t, c, websocket.MessageBinary, []byte{1, 2, 3})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if typ, b, err := c.Read(ctx); err != nil || typ != websocket.MessageBinary || string(b) != "\x01\x02\x03" {
			t.Fatalf("binary echo = %v %v %v", typ, b, err)
		}
		send(t, c, websocket.MessageText, []byte("bye"))
		_, _, err = c.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("after bye: %v", err)
		}
	})
	t.Run("plain accept", func(t *testing.T) {
		c, _, err := dial(t, wsURL+"/plain", alice)
		if err != nil {
			t.Fatal(err)
		}
		send(t, c, websocket.MessageText, []byte("x"))
		if got := readText(t, c); got != "plain: x" {
			t.Fatalf("reply = %q", got)
		}
		_ = c.Close(websocket.StatusNormalClosure, "done")
		waitFor(t, func() bool {
			_, body := e.do(t, "alice", "GET", "/agents/sock/sessions/s1/closes", nil, nil)
			return strings.Contains(string(body), "plain 1000")
		})
	})
	t.Run("oversized message closes with 1009", func(t *testing.T) {
		c, _, err := dial(t, wsURL+"/chat", alice)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		readText(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.Write(ctx, websocket.MessageBinary, make([]byte, 2<<20))
		_, _, err = c.Read(ctx)
		if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("err = %v, want close 1009", err)
		}
		waitFor(t, func() bool {
			_, body := e.do(t, "alice", "GET", "/agents/sock/sessions/s1/closes", nil, nil)
			return strings.Contains(string(body), "1009")
		})
	})
	t.Run("another tenant cannot attach", func(t *testing.T) {
		c, resp, err := dial(t, wsURL+"/chat", http.Header{"X-Principal": {"mallory"}})
		if err == nil {
			c.CloseNow()
			t.Fatal("mallory attached to alice's session")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("resp = %v, err = %v; want 403", resp, err)
		}
	})
	t.Run("not a complete upgrade", func(t *testing.T) {
		resp, body := e.do(t, "alice", "GET", "/agents/sock/sessions/s1/chat", nil, map[string]string{"Upgrade": "websocket"})
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if ok() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met in 10s")
}

// TestWebSocketLimitsClass: the per-session and per-tenant socket limits
// refuse the upgrade with a 429 problem (and the session hears a close of
// the socket it accepted), and an idle socket is closed with 1001.
func TestWebSocketLimitsClass(t *testing.T) {
	e := newEnvWith(t, session.SocketLimits{PerSession: 1, PerTenant: 2, Idle: 500 * time.Millisecond})
	if resp, body := e.deploy(t, "alice", agentFiles("sock", socketJS)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	base := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/agents/sock/sessions/"
	alice := http.Header{"X-Principal": {"alice"}}
	var open []*websocket.Conn
	defer func() {
		for _, c := range open {
			c.CloseNow()
		}
	}()
	for _, c := range []struct {
		session string
		status  int
	}{{"s1", 0}, {"s1", http.StatusTooManyRequests}, {"s2", 0}, {"s3", http.StatusTooManyRequests}} {
		conn, resp, err := dial(t, base+c.session+"/chat", alice)
		if c.status == 0 {
			if err != nil {
				t.Fatalf("%s: %v", c.session, err)
			}
			open = append(open, conn)
			readText(t, conn)
			continue
		}
		if err == nil || resp == nil || resp.StatusCode != c.status {
			t.Fatalf("%s: resp %v err %v, want %d", c.session, resp, err, c.status)
		}
	}
	// Idle: the open sockets close with 1001 after the idle time.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, err := open[0].Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("idle socket: %v, want 1001", err)
	}
	waitFor(t, func() bool {
		_, body := e.do(t, "alice", "GET", "/agents/sock/sessions/s1/closes", nil, nil)
		return strings.Contains(string(body), "1013") && strings.Contains(string(body), "1001 idle timeout")
	})
}
