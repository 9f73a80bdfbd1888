//go:build linux

package gvisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// startHTTPServer runs python3 -m http.server on port in sb and waits
// until DialPort reaches it.
func startHTTPServer(t *testing.T, sb sandbox.Sandbox, port int, bind string) {
	t.Helper()
	ctx := context.Background()
	if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "python3", Args: []string{"-m", "http.server", "-b", bind, fmt.Sprint(port)}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // readiness, not a measurement
	for {
		conn, err := sandbox.DialPort(ctx, sb, port)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server on port %d never answered: %v", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func getThrough(sb sandbox.Sandbox, port int, path string) (int, string, error) {
	c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return sandbox.DialPort(ctx, sb, port)
		},
		DisableKeepAlives: true,
	}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestDialPortClass: a port in a gVisor sandbox is reached through its
// exec agent on IPv4 and IPv6 loopback; a port nothing listens on fails
// at once, a port out of range is refused before the agent, connections
// beyond portRelayMax wait, then are refused while the others work, and a closed
// sandbox dials nothing.
func TestDialPortClass(t *testing.T) {
	tier := newTestTier(t)
	ctx := context.Background()
	sb, err := sandbox.Create(ctx, tier, "ports", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "echo hello > /workspace/index.txt"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	startHTTPServer(t, sb, 8000, "127.0.0.1")
	if code, body, err := getThrough(sb, 8000, "/index.txt"); err != nil || code != 200 || body != "hello\n" {
		t.Fatalf("GET through the agent: %d %q %v", code, body, err)
	}
	startHTTPServer(t, sb, 8006, "::1")
	if code, body, err := getThrough(sb, 8006, "/index.txt"); err != nil || code != 200 || body != "hello\n" {
		t.Fatalf("GET on the IPv6 loopback: %d %q %v", code, body, err)
	}
	t.Run("nothing listens", func(t *testing.T) {
		t0 := time.Now()
		_, err := sandbox.DialPort(ctx, sb, 8001)
		if err == nil || time.Since(t0) > 10*time.Second {
			t.Fatalf("port 8001: %v after %v", err, time.Since(t0))
		}
		t.Log(err)
	})
	t.Run("bad ports", func(t *testing.T) {
		for _, p := range []int{0, -1, 65536, 1 << 20} {
			if _, err := sb.(sandbox.PortDialer).DialPort(ctx, p); !errors.Is(err, sandbox.ErrBadPort) {
				t.Errorf("port %d: %v", p, err)
			}
		}
	})
	t.Run("connection cap", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		var mu sync.Mutex
		var wg sync.WaitGroup
		refused := 0
		for range portRelayMax + 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := sandbox.DialPort(ctx, sb, 8000)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					conns = append(conns, c)
				case errors.Is(err, sandbox.ErrPortConns):
					refused++
				default:
					t.Errorf("dial: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(conns) != portRelayMax || refused != 16 {
			t.Fatalf("%d connections and %d refused, want %d and 16", len(conns), refused, portRelayMax)
		}
		// Every held connection is a live stream.
		for _, c := range conns[:8] {
			fmt.Fprintf(c, "GET /index.txt HTTP/1.0\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.Contains(line, "200") {
				t.Fatalf("held connection: %q %v", line, err)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		if code, _, err := getThrough(sb, 8000, "/index.txt"); err != nil || code != 200 {
			t.Fatalf("after the cap: %d %v", code, err)
		}
	})
	sb.Close()
	if _, err := sandbox.DialPort(ctx, sb, 8000); !errors.Is(err, sandbox.ErrClosed) {
		t.Fatalf("closed sandbox: %v", err)
	}
}

// TestPortsAcrossRestoreClass: a memory snapshot taken while a relayed
// connection and a terminal are open succeeds; runsc checkpoint cuts the
// sandbox's host socket connections, so both end at once (no hang) and
// new ones work on the original; and the restored copy, whose server was
// restored with it, is reached through its own agent, and opens
// terminals (through the Manager's wrapper, as the routes see it).
func TestPortsAcrossRestoreClass(t *testing.T) {
	tier := newTestTier(t)
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := newTestManager(t, tier)
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "echo kept > /workspace/index.txt"}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	startHTTPServer(t, sb, 8000, "127.0.0.1")
	held, err := sandbox.DialPort(ctx, sb, 8000)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	term, err := sb.(sandbox.Terminaler).Terminal(ctx, sandbox.ExecSpec{Cmd: "sh"}, sandbox.WindowSize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	dir := filepath.Join(t.TempDir(), "snap")
	res, err := m.Snapshot(ctx, sb.ID(), dir)
	if err != nil || !res.Memory {
		t.Fatalf("snapshot with a relay and a terminal open: %+v %v", res, err)
	}
	fmt.Fprintf(held, "GET /index.txt HTTP/1.0\r\n\r\n")
	_ = held.SetReadDeadline(time.Now().Add(30 * time.Second))
	if b, err := io.ReadAll(held); err != nil {
		t.Errorf("held connection after the snapshot: %q %v", b, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	if code, err := term.Wait(wctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("terminal open across the snapshot: %d %v", code, err)
	}
	wcancel()
	if code, body, err := getThrough(sb, 8000, "/index.txt"); err != nil || code != 200 || body != "kept\n" {
		t.Fatalf("original after the snapshot: %d %q %v", code, body, err)
	}
	r, err := m.Restore(ctx, res.Spec, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Delete(ctx, r.ID())
	var code int
	var body string
	deadline := time.Now().Add(30 * time.Second) // the restored agent reconnects
	for {
		code, body, err = getThrough(r, 8000, "/index.txt")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || code != 200 || body != "kept\n" {
		t.Fatalf("restored server: %d %q %v", code, body, err)
	}
	rt, err := r.(sandbox.Terminaler).Terminal(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "exit 4"}}, sandbox.WindowSize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if code, err := rt.Wait(ctx); err != nil || code != 4 {
		t.Errorf("restored terminal: %d %v", code, err)
	}
}
