package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestStrictJSONClass sends bodies with a key given twice (at the top and
// nested) and null bodies to routes of every kind: each is a 400
// invalid-json problem and changes nothing.
func TestStrictJSONClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	user := userClient(t, d, admin, "user:alice")
	before, err := admin.ApplyPolicies(ctx, `permit (principal == User::"carol", action, resource);`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ method, path, body string }{
		{"POST", "/v1/sandboxes", `{"tier":"process","tier":"gvisor"}`},
		{"POST", "/v1/sandboxes", `null`},
		{"PUT", "/v1/policies", `null`},
		{"PUT", "/v1/policies", `{"text":"","text":"permit (principal, action, resource);"}`},
		{"POST", "/v1/tokens", `{"subject":"user:alice","subject":"user:admin"}`},
		{"PUT", "/v1/secrets/k", `{"value":"x","allow_hosts":["a.example"],"value":"y"}`},
		{"PUT", "/v1/trusted-hosts", `null`},
		{"POST", "/v1/policies/test", `{"principal":"user:a","context":{"x":1,"x":2}}`},
		{"POST", "/v1/tools/ping/call", `{"a":1,"a":2}`},
		{"POST", "/v1/tools/ping/call", `null`},
		{"POST", "/v1/chat/completions", `{"model":"m","model":"n","messages":[]}`},
		{"POST", "/v1/sandboxes", `{"tier":"process"} {}`},
	}
	for _, r := range cases {
		code, typ := rawStatus(t, admin, r.method, r.path, r.body)
		if code != 400 || typ != api.KindInvalidJSON.TypeURI() {
			t.Errorf("%s %s %s: %d %s, want 400 %s", r.method, r.path, r.body, code, typ, api.KindInvalidJSON)
		}
	}
	// The same through MCP: a duplicate anywhere in the message is a parse error.
	resp, err := admin.Raw(ctx, "POST", "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","arguments":{"a":1,"a":2}}}`), "application/json")
	if err == nil {
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		if !strings.Contains(b.String(), "duplicate key") {
			t.Errorf("MCP tools/call with a duplicate argument: %s", b.String())
		}
	} else if !strings.Contains(err.Error(), "duplicate key") {
		t.Errorf("MCP tools/call with a duplicate argument: %v", err)
	}
	// Nothing changed: no sandbox, the policy set as before.
	if sbs, err := admin.Sandboxes(ctx); err != nil || len(sbs) != 0 {
		t.Errorf("sandboxes after refused creates: %v %v", sbs, err)
	}
	if ps, err := admin.Policies(ctx); err != nil || ps.Version != before.Version || ps.Text != before.Text {
		t.Errorf("policy set changed by refused bodies: %+v %v", ps, err)
	}
	if code, _ := rawStatus(t, user, "POST", "/v1/tokens", `{"subject":"user:alice","subject":"user:admin"}`); code != 400 {
		t.Errorf("user token request with a duplicate subject: %d", code)
	}
}
