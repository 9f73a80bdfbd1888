package sandboxhttp_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

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
