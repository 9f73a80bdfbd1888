package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// rawStatus sends one request and returns the status and the problem type
// (when the answer is a problem).
func rawStatus(t *testing.T, c *client.Client, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	resp, err := c.Raw(context.Background(), method, path, rd, "application/json")
	if err == nil {
		resp.Body.Close()
		return resp.StatusCode, ""
	}
	var p *api.Problem
	if !errors.As(err, &p) {
		t.Fatalf("%s %s: %v", method, path[:min(len(path), 60)], err)
	}
	return p.Status, p.Type
}

// TestIdentifierLimitClass sends identifiers of 5,000 characters through
// every route that names one in its path, through request bodies and from
// agent code, as an administrator and as a user. Each is a 4xx problem; the
// store's connection is never broken (no redial), /readyz stays 200 and
// tokens keep verifying.
func TestIdentifierLimitClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	user := userClient(t, d, admin, "user:alice")
	if err := deployJS(admin, `{"name":"longkeys","entry":"agent.js"}`, `export default { async fetch(req, env) {
		const k = "k".repeat(5000), out = [];
		for (const f of [() => env.state.get(k), () => env.state.put(k, 1), () => env.state.delete(k), () => env.state.list({prefix: k})]) {
			try { await f(); out.push("ok"); } catch (e) { out.push(String(e.message).slice(0, 80)); }
		}
		return Response.json(out);
	} }`); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 5000)
	routes := []struct{ method, path, body string }{
		{"POST", "/v1/approvals/" + long + "/approve", ""},
		{"POST", "/v1/approvals/" + long + "/deny", ""},
		{"GET", "/v1/secrets/" + long, ""},
		{"PUT", "/v1/secrets/" + long, `{"value":"x","allow_hosts":["a.example"]}`},
		{"DELETE", "/v1/secrets/" + long, ""},
		{"GET", "/v1/agents/" + long, ""},
		{"GET", "/v1/agents/" + long + "/versions", ""},
		{"GET", "/v1/agents/longkeys/sessions/" + long, ""},
		{"DELETE", "/v1/agents/longkeys/sessions/" + long, ""},
		{"POST", "/v1/agents/longkeys/sessions/" + long + "/hibernate", ""},
		{"GET", "/v1/agents/longkeys/sessions/" + long + "/labels", ""},
		{"GET", "/agents/longkeys/sessions/" + long + "/x", ""},
		{"GET", "/agents/" + long + "/sessions/s/x", ""},
		{"GET", "/v1/sandboxes/" + long, ""},
		{"POST", "/v1/sandboxes/" + long + "/exec", `{"cmd":"true"}`},
		{"POST", "/v1/tools/" + long + "/call", `{}`},
		{"GET", "/v1/tool-registry/" + long, ""},
		{"DELETE", "/v1/model-providers/" + long, ""},
		{"POST", "/v1/tools/state_get/call", `{"agent":"longkeys","session":"s","key":"` + long + `"}`},
		{"POST", "/v1/tools/state_put/call", `{"agent":"longkeys","session":"` + long + `","key":"k","value":1}`},
		{"POST", "/v1/tokens/revoke", `{"id":"` + long + `","expires":"2030-01-01T00:00:00Z"}`},
	}
	for _, c := range []*client.Client{admin, user} {
		for _, r := range routes {
			code, typ := rawStatus(t, c, r.method, r.path, r.body)
			if code < 400 || code >= 500 || typ == "" {
				t.Errorf("%s %s…: status %d type %q, want a 4xx problem", r.method, r.path[:min(len(r.path), 40)], code, typ)
			}
		}
	}
	resp, err := admin.Call(ctx, "longkeys", "s1", "GET", "/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var outs []string
	if err := json.Unmarshal(b, &outs); err != nil || len(outs) != 4 {
		t.Fatalf("agent answer %s: %v", b, err)
	}
	for _, o := range outs {
		if !strings.Contains(o, "512") {
			t.Errorf("env.state with a 5,000-byte key: %q, want the 512-byte limit named", o)
		}
	}
	if err := admin.Ready(ctx); err != nil {
		t.Fatalf("readyz after the probes: %v", err)
	}
	if n := daemon.StoreRedialsForTest(d); n != 0 {
		t.Fatalf("the probes broke the store connection (%d redials)", n)
	}
	if _, err := user.WhoAmI(ctx); err != nil {
		t.Fatalf("user token after the probes: %v", err)
	}
}

// TestStoreConnectionLossRecovers breaks the daemon's store connection the
// way the long-key attack did and shows the node recover without a
// restart: /readyz returns to 200, tokens verify, revocations made after
// the break still take effect, and sessions answer.
func TestStoreConnectionLossRecovers(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	if err := deployJS(admin, `{"name":"survivor","entry":"agent.js"}`, `let n = 0; export default { async fetch(req, env) {
		n++; await env.state.put("n", n); return new Response(String(n)); } }`); err != nil {
		t.Fatal(err)
	}
	call := func() (string, error) {
		resp, err := admin.Call(ctx, "survivor", "s", "GET", "/", nil, nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if got, err := call(); err != nil || got != "1" {
		t.Fatalf("first call: %q %v", got, err)
	}
	tok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:bob", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := client.New("http://"+d.Addr(), tok.Token)

	daemon.BreakStoreConnectionForTest(d)
	deadline := time.Now().Add(15 * time.Second)
	for daemon.StoreRedialsForTest(d) == 0 || admin.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery: redials %d, readyz %v", daemon.StoreRedialsForTest(d), admin.Ready(ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := bob.WhoAmI(ctx); err != nil {
		t.Fatalf("token after recovery: %v", err)
	}
	if got, err := call(); err != nil || got != "2" {
		t.Fatalf("session after recovery: %q %v", got, err)
	}
	if err := admin.RevokeToken(ctx, api.RevokeRequest{Token: tok.Token}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.WhoAmI(ctx); !api.IsKind(err, api.KindUnauthenticated) {
		t.Fatalf("revoked after recovery: want unauthenticated, got %v", err)
	}
	// A second break is recovered from as well.
	daemon.BreakStoreConnectionForTest(d)
	deadline = time.Now().Add(15 * time.Second)
	for daemon.StoreRedialsForTest(d) < 2 || admin.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("no recovery from the second break")
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, _ := json.Marshal(map[string]any{"agent": "survivor", "session": "s", "key": "n"})
	var res api.ToolResult
	if err := admin.Do(ctx, http.MethodPost, "/v1/tools/state_get/call", json.RawMessage(body), &res); err != nil {
		t.Fatalf("state_get after the second recovery: %v", err)
	}
}
