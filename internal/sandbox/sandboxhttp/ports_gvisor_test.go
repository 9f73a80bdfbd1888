package sandboxhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// TestPortForwardGVisor: TestPortForward on the gVisor tier, whose ports
// are relayed by its exec agent: HTTP and a WebSocket through the route,
// authenticated, without the caller's Authorization, and the same
// refusals of bad ports and of a port nothing listens on.
func TestPortForwardGVisor(t *testing.T) {
	s := startGVisorServer(t)
	testPortForward(t, s, startPortServerOn(t, s, api.SandboxTierGVisor))
}

// TestPortForwardGVisorClass: on the gVisor tier, many connections at
// once all end (served, or 429 over the per-sandbox cap) and leave
// the port reachable; a signed URL works; another sandbox's id and a
// deleted sandbox answer 404.
func TestPortForwardGVisorClass(t *testing.T) {
	s := startGVisorServer(t)
	id := startPortServerOn(t, s, api.SandboxTierGVisor)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 150 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/8000/many")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("status codes of 150 concurrent requests: %v", codes)
	if codes[200] == 0 || codes[200]+codes[429] != 150 {
		t.Errorf("concurrent requests: %v", codes)
	}
	if resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/8000/after"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the burst: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	u, err := s.client.CreatePortURL(ctx, id, api.PortURLRequest{Port: 8000, Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(s.URL + u.URL); err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed URL: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for name, path := range map[string]string{
		"unknown sandbox": "/v1/sandboxes/sb-0000000000000000/ports/8000/",
	} {
		if resp, err := authGet(s.URL + path); err != nil || resp.StatusCode != 404 {
			t.Errorf("%s: %v %v", name, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	if err := s.client.DeleteSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/8000/"); err != nil || resp.StatusCode != 404 {
		t.Errorf("deleted sandbox: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// wrongUpgradeServer answers every request on port 8001 with a 101 for a
// protocol nobody asked for.
const wrongUpgradeServer = `
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8001))
s.listen(128)
while True:
    c, _ = s.accept()
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
    except OSError:
        pass
`

// TestPortWrongUpgradeClass: a server in the sandbox that answers plain
// requests with a 101 for another protocol gets a 503 saying so for each,
// and
// leaks nothing: more of them than the tier's relay slots (64) leave the
// sandbox's ports usable.
func TestPortWrongUpgradeClass(t *testing.T) {
	s := startGVisorServer(t)
	id := startPortServerOn(t, s, api.SandboxTierGVisor)
	ctx := context.Background()
	if _, err := s.client.WriteFile(ctx, id, "/workspace/up.py", strings.NewReader(wrongUpgradeServer), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.StartProcess(ctx, id, api.ExecRequest{Cmd: "python3", Args: []string{"/workspace/up.py"}}); err != nil {
		t.Fatal(err)
	}
	// get answers one request to port 8001: its status and whether the
	// problem says the server switched protocols.
	get := func() (int, bool) {
		resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/8001/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, strings.Contains(string(b), "switched to")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) { // readiness
		if _, switched := get(); switched {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the wrong-upgrade server never answered")
		}
	}
	codes := map[string]int{}
	for range 80 {
		code, switched := get()
		codes[fmt.Sprint(code, switched)]++
	}
	if codes["503 true"] != 80 {
		t.Errorf("80 requests answered with a wrong 101: %v, want 80 × 503 saying so (no 429: no relay slot lost)", codes)
	}
	if resp, err := authGet(s.URL + "/v1/sandboxes/" + id + "/ports/8000/after"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("port 8000 after them: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
