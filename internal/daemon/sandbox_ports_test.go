package daemon_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestSandboxPortTenantClass: another tenant reaches nothing of a
// sandbox's ports and terminals: not the port itself (HTTP or a WebSocket
// upgrade, any method), not a terminal, not a signed URL of it, and a URL signed for one sandbox does
// not open another; Cedar decides as for every sandbox route.
func TestSandboxPortTenantClass(t *testing.T) {
	t.Run("process", func(t *testing.T) {
		if err := process.Available(); err != nil {
			t.Skipf("process sandbox tier unavailable: %v", err)
		}
		testSandboxPortTenant(t, api.SandboxTierProcess)
	})
	t.Run("gvisor", func(t *testing.T) {
		if err := gvisor.Available(""); err != nil {
			t.Skipf("gvisor sandbox tier unavailable: %v", err)
		}
		testSandboxPortTenant(t, api.SandboxTierGVisor)
	})
}

func testSandboxPortTenant(t *testing.T, tier string) {
	d, admin := startDaemon(t)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	asb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 120, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	bsb, err := bob.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 120, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:bob", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + d.Addr()
	do := func(method, path, body string, hdr map[string]string) int {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bobTok.Token)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	ws := map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}
	p := "/v1/sandboxes/" + asb.ID
	for _, c := range []struct {
		name, method, path, body string
		hdr                      map[string]string
	}{
		{"GET port", "GET", p + "/ports/8000/", "", nil},
		{"POST port", "POST", p + "/ports/8000/x", "data", nil},
		{"DELETE port", "DELETE", p + "/ports/80/x", "", nil},
		{"websocket", "GET", p + "/ports/8000/ws", "", ws},
		{"terminal", "GET", p + "/terminal", "", ws},
		{"terminal with a command", "GET", p + "/terminal?cmd=sh&rows=24", "", ws},
		{"signed URL", "POST", p + "/port-urls", `{"port":8000}`, map[string]string{"Content-Type": "application/json"}},
	} {
		if code := do(c.method, c.path, c.body, c.hdr); code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("bob: %s: %d", c.name, code)
		}
	}
	// A URL bob may sign for his own sandbox opens only his.
	u, err := bob.CreatePortURL(ctx, bsb.ID, api.PortURLRequest{Port: 8000})
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(u.URL, bsb.ID, asb.ID, 1)
	resp, err := http.Get(base + forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob's URL moved to alice's sandbox: %d", resp.StatusCode)
	}
}
