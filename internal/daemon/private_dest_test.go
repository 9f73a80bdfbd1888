package daemon_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestPrivateDestinationClass runs a daemon with the real address rules
// (no loopback test hook) and an embedded NATS listener. A model provider
// or tool upstream on loopback is refused until an administrator marks it
// allow_private; then it works, by address and by localhost. The daemon's
// own API port and NATS port stay refused even then, and such a refusal is
// final: no retries, no fallback to the next provider. A session cannot
// borrow a provider's grant for its own fetch().
func TestPrivateDestinationClass(t *testing.T) {
	cfg := config.Default()
	cfg.NATSListen = freePort(t)
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	apiPort := strings.Split(d.Addr(), ":")[1]
	natsPort := strings.Split(cfg.NATSListen, ":")[1]
	llm := openaitest.New(t, "local")
	llm.SetReply("hi from the local model", 5, 3)
	chat := func(model string) ([]byte, error) {
		body, _, err := admin.ChatCompletion(ctx, map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": "hi"}}})
		return body, err
	}

	t.Run("model provider", func(t *testing.T) {
		if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "local", BaseURL: llm.BaseURL(), Models: []string{"llama"}}); err != nil {
			t.Fatal(err)
		}
		_, err := chat("llama")
		wantKind(t, "loopback provider without allow_private", err, api.KindForbidden, "--allow-private")
		if n := len(llm.Requests()); n != 0 {
			t.Fatalf("the provider was reached %d times", n)
		}
		for _, base := range []string{llm.BaseURL(), strings.Replace(llm.BaseURL(), "127.0.0.1", "localhost", 1)} {
			if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "local", BaseURL: base, Models: []string{"llama"}, AllowPrivate: true}); err != nil {
				t.Fatal(err)
			}
			if body, err := chat("llama"); err != nil || !strings.Contains(string(body), "hi from the local model") {
				t.Fatalf("allow_private provider at %s: %s %v", base, body, err)
			}
		}
		ps, err := admin.ModelProviders(ctx)
		if err != nil || len(ps) != 1 || !ps[0].AllowPrivate {
			t.Fatalf("providers: %+v %v", ps, err)
		}
		// The daemon's own listeners, however named: refused even with
		// allow_private, at once, and the healthy provider behind is not
		// tried (a refusal by the platform is final).
		for name, base := range map[string]string{
			"own-api":   "http://127.0.0.1:" + apiPort + "/v1",
			"own-api-l": "http://localhost:" + apiPort + "/v1",
			"own-api-2": "http://127.0.0.2:" + apiPort + "/v1",
			"own-nats":  "http://127.0.0.1:" + natsPort + "/v1",
		} {
			if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: name, BaseURL: base, Models: []string{"m-" + name, "shared"},
				AllowPrivate: true, Priority: -1}); err != nil {
				t.Fatal(err)
			}
			_, err := chat("m-" + name)
			wantKind(t, name, err, api.KindForbidden, "own listener")
		}
		if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "local", BaseURL: llm.BaseURL(), Models: []string{"llama", "shared"},
			AllowPrivate: true, Priority: 5}); err != nil {
			t.Fatal(err)
		}
		before := len(llm.Requests())
		_, err = chat("shared")
		wantKind(t, "own listener first in the fallback order", err, api.KindForbidden, "own listener")
		if n := len(llm.Requests()); n != before {
			t.Fatalf("fell back to the next provider after a platform refusal (%d requests)", n-before)
		}
		for _, name := range []string{"own-api", "own-api-l", "own-api-2", "own-nats"} {
			if err := admin.RemoveModelProvider(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := admin.Audit(ctx, client.AuditQuery{Type: "egress", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		denied := 0
		for _, e := range evs.Events {
			if e.Outcome == "denied" && strings.Contains(e.Reason, "own listener") {
				denied++
			}
		}
		if denied != 5 {
			t.Errorf("%d own-listener denials audited, want 5 (one per call, no retries)", denied)
		}
	})

	t.Run("tool upstream", func(t *testing.T) {
		srv := mcp.NewServer(&mcp.Implementation{Name: "local-tools", Version: "1"}, nil)
		echoTool(srv, "Echo text back.")
		up := upstreamMCP(t, srv, nil)
		_, err := admin.AddToolUpstream(ctx, api.ToolRegistryAddRequest{Name: "lan", MCPURL: up.URL})
		wantKind(t, "loopback upstream without allow_private", err, api.KindForbidden, "--allow-private")
		e, err := admin.AddToolUpstream(ctx, api.ToolRegistryAddRequest{Name: "lan", MCPURL: up.URL, AllowPrivate: true})
		if err != nil || !e.AllowPrivate {
			t.Fatalf("allow_private upstream: %+v %v", e, err)
		}
		if _, err := admin.ApproveToolUpstream(ctx, "lan", nil); err != nil {
			t.Fatal(err)
		}
		res, err := d.ToolRegistryProvider("lan").Call(ctx, toolbox.Caller{Principal: "admin"}, "lan.echo", json.RawMessage(`{"text":"hi"}`))
		if err != nil || res.Text != "echo: hi" {
			t.Fatalf("call through the loopback upstream: %+v %v", res, err)
		}
		for _, u := range []string{"http://127.0.0.1:" + apiPort + "/mcp", "http://localhost:" + natsPort + "/mcp"} {
			_, err := admin.AddToolUpstream(ctx, api.ToolRegistryAddRequest{Name: "own", MCPURL: u, AllowPrivate: true})
			if err == nil || !strings.Contains(err.Error(), "own listener") {
				t.Errorf("upstream on the daemon's own port %s: %v", u, err)
			}
		}
	})

	t.Run("session cannot borrow a grant", func(t *testing.T) {
		llmHost := strings.TrimPrefix(strings.TrimSuffix(llm.BaseURL(), "/v1"), "http://")
		man := `{"name":"borrow","entry":"agent.js","egress":["` + llmHost + `"],"limits":{"idle_seconds":3600}}`
		if err := deployJS(admin, man, echoAgent); err != nil {
			t.Fatal(err)
		}
		before := len(llm.Requests())
		code, body := get(t, admin, "borrow", "s1", llm.BaseURL()+"/chat/completions", "")
		if code != 599 || !strings.Contains(body, "denied") {
			t.Fatalf("session fetch to the provider's loopback address: %d %s", code, body)
		}
		if len(llm.Requests()) != before {
			t.Fatal("the session reached the loopback provider")
		}
	})
}
