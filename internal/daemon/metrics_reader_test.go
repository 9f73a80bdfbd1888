package daemon_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestMetricsReaderRoleClass: `agentcloud token create --role
// metrics-reader` issues a token that reads /metrics and nothing else:
// every other route — reads the platform leaves open to any principal
// (status, whoami, listings), reads and writes of agents, sessions,
// sandboxes, tools, policies, tokens — is 403. /metrics without a token
// is 401 and with a plain user's token 403; the role cannot mint tokens
// (its own or others'), and another user cannot take the role.
func TestMetricsReaderRoleClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	var out, errb bytes.Buffer
	if code := cli.Main(ctx, []string{"--data", d.DataDir(), "token", "create", "--role", "metrics-reader"}, &out, &errb); code != 0 {
		t.Fatalf("token create --role metrics-reader: %d %s", code, errb.String())
	}
	reader := strings.TrimSpace(out.String())
	errb.Reset()
	if code := cli.Main(ctx, []string{"--data", d.DataDir(), "token", "create", "--role", "auditor"}, io.Discard, &errb); code == 0 || !strings.Contains(errb.String(), "--role") {
		t.Fatalf("an unknown role: %d %q", code, errb.String())
	}
	status := func(token, method, path, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+d.Addr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if method == "GET" && path == "/metrics" && resp.StatusCode == 200 && !bytes.Contains(b, []byte("agentcloud_policy_decisions_total")) {
			t.Fatalf("/metrics answered without the metrics: %.200s", b)
		}
		return resp.StatusCode
	}
	if code := status(reader, "GET", "/metrics", ""); code != http.StatusOK {
		t.Fatalf("the metrics reader reads /metrics: %d", code)
	}
	if code := status(adminToken(t, d.DataDir()), "GET", "/metrics", ""); code != http.StatusOK {
		t.Fatalf("an administrator reads /metrics: %d", code)
	}
	if code := status("", "GET", "/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	bobTok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:bob", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if code := status(bobTok.Token, "GET", "/metrics", ""); code != http.StatusForbidden {
		t.Fatalf("/metrics with a user's token: %d, want 403", code)
	}
	refused := []struct{ method, path, body string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/whoami", ""},
		{"GET", "/v1/agents", ""},
		{"GET", "/v1/sandboxes", ""},
		{"GET", "/v1/secrets", ""},
		{"GET", "/v1/approvals", ""},
		{"GET", "/v1/tools", ""},
		{"GET", "/v1/policies", ""},
		{"GET", "/v1/audit", ""},
		{"GET", "/v1/traffic", ""},
		{"GET", "/v1/agents/counter/sessions/s1/state", ""},
		{"POST", "/v1/sandboxes", `{}`},
		{"POST", "/v1/tokens", `{"subject":"user:metrics-reader"}`},
		{"POST", "/v1/tokens", `{"subject":"user:admin"}`},
		{"POST", "/v1/tools/http_fetch/call", `{"url":"https://example.com"}`},
		{"PUT", "/v1/policies", `{"policies":""}`},
		{"POST", "/agents/counter/sessions/s1", ""},
	}
	for _, r := range refused {
		if code := status(reader, r.method, r.path, r.body); code != http.StatusForbidden {
			t.Errorf("metrics reader %s %s: %d, want 403", r.method, r.path, code)
		}
	}
	// bob can mint tokens only for himself: not the role's.
	bob := userClient(t, d, admin, "user:bob")
	if _, err := bob.CreateToken(ctx, api.TokenRequest{Subject: "user:metrics-reader"}); err == nil {
		t.Fatal("a user minted a metrics-reader token")
	}
}
