package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
)

// aiAgent answers with the text of a chat completion, or the name and
// message of the error.
const aiAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    try {
      if (u.searchParams.get("embed")) {
        const e = await env.ai.embed({model: "emb", input: "hello"});
        return new Response(String(e.data[0].embedding.length));
      }
      const r = await env.ai.chat({model: u.searchParams.get("model") || "default", max_tokens: 50,
        messages: [{role: "user", content: "say hi"}]});
      return new Response(r.choices[0].message.content);
    } catch (e) {
      return new Response(e.name + ": " + e.message, {status: 599});
    }
  }
};`

func callAgent(t *testing.T, c *client.Client, agent, sess, query string) (int, string) {
	t.Helper()
	resp, err := c.Call(context.Background(), agent, sess, "GET", "/"+query, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestModelGateway: a provider configured through the API with its key in
// a secret; calls over HTTP and from agent code through the egress proxy;
// the key reaches the provider and nothing else; usage per session;
// budgets refuse agent code with BudgetExceededError; users cannot
// configure providers.
func TestModelGateway(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	llm := openaitest.New(t, "llm")
	llm.SetReply("hi from the model", 12, 4)
	base := strings.Replace(llm.BaseURL(), "127.0.0.1", "llm.test", 1)
	const key = "sk-test-5e4f3a2b1c"
	// The fake provider speaks plain http on a loopback port: the secret
	// has to allow exactly that.
	if _, err := admin.SetSecret(ctx, "LLM_KEY", api.SecretRequest{Value: key, AllowHosts: []string{hostPort(t, base)}, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "llm", BaseURL: base, Secret: "LLM_KEY",
		Models: []string{"default=gpt-test", "emb"}, Prices: map[string]api.ModelPrice{"default": {Input: 1, Output: 2}}}); err != nil {
		t.Fatal(err)
	}
	ps, err := admin.ModelProviders(ctx)
	if err != nil || len(ps) != 1 || ps[0].Secret != "LLM_KEY" {
		t.Fatalf("providers %+v %v", ps, err)
	}

	// Over HTTP, as a user.
	alice := userClient(t, d, admin, "user:alice")
	body, cached, err := alice.ChatCompletion(ctx, map[string]any{"model": "default", "temperature": 0,
		"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	if err != nil || cached || !bytes.Contains(body, []byte("hi from the model")) {
		t.Fatalf("chat: %s %v", body, err)
	}
	if _, cached, err = alice.ChatCompletion(ctx, map[string]any{"model": "default", "temperature": 0,
		"messages": []map[string]string{{"role": "user", "content": "hi"}}}); err != nil || !cached {
		t.Fatalf("second identical call: cached %v, %v", cached, err)
	}
	reqs := llm.Requests()
	if len(reqs) != 1 || reqs[0].Authorization != "Bearer "+key || reqs[0].Body["model"] != "gpt-test" {
		t.Fatalf("provider saw %+v", reqs)
	}
	_, err = alice.AddModelProvider(ctx, api.ModelProvider{Name: "evil", BaseURL: "http://evil.test", Models: []string{"default"}})
	wantKind(t, "user adding a provider", err, api.KindForbidden, "administrators")
	_, err = admin.AddModelProvider(ctx, api.ModelProvider{Name: "p2", BaseURL: "http://other.test/v1", Secret: "LLM_KEY", Models: []string{"m"}})
	wantKind(t, "provider on a host its secret does not allow", err, api.KindValidation, "--allow-host other.test")
	_, err = admin.AddModelProvider(ctx, api.ModelProvider{Name: "p2", BaseURL: "http://other.test/v1", Secret: "NOPE", Models: []string{"m"}})
	wantKind(t, "provider with a missing secret", err, api.KindValidation, "does not exist")
	_, _, err = alice.ChatCompletion(ctx, map[string]any{"model": "nope", "messages": []map[string]string{{"role": "user", "content": "x"}}})
	wantKind(t, "unknown model", err, api.KindNotFound, "nope")
	rep, err := admin.Usage(ctx, "", "", "user:alice")
	if err != nil || rep.Total.Requests != 2 || rep.Total.CacheHits != 1 || rep.Total.PromptTokens != 12 {
		t.Fatalf("alice's usage %+v %v", rep, err)
	}

	// From agent code, as the session.
	if err := deployJS(alice, `{"name":"bot","entry":"agent.js","limits":{"idle_seconds":3600}}`, aiAgent); err != nil {
		t.Fatal(err)
	}
	if code, text := callAgent(t, alice, "bot", "s1", ""); code != 200 || text != "hi from the model" {
		t.Fatalf("env.ai.chat: %d %s", code, text)
	}
	if code, text := callAgent(t, alice, "bot", "s1", "?embed=1"); code != 200 || text != "3" {
		t.Fatalf("env.ai.embed: %d %s", code, text)
	}
	if code, text := callAgent(t, alice, "bot", "s1", "?model=nope"); code != 599 || !strings.HasPrefix(text, "ModelError: ") {
		t.Fatalf("unknown model from JS: %d %s", code, text)
	}
	rep, err = admin.Usage(ctx, "bot", "s1", "")
	if err != nil || len(rep.Records) != 1 || rep.Total.Requests != 2 || rep.Total.CostUSD <= 0 {
		t.Fatalf("session usage %+v %v", rep, err)
	}
	// A budget too small for one call refuses it in agent code.
	if _, err := admin.SetModelBudget(ctx, api.ModelBudgetRequest{Agent: "bot", Session: "s2", Tokens: 30}); err != nil {
		t.Fatal(err)
	}
	if code, text := callAgent(t, alice, "bot", "s2", ""); code != 599 || !strings.HasPrefix(text, "BudgetExceededError: ") {
		t.Fatalf("over budget: %d %s", code, text)
	}
	if code, _ := callAgent(t, alice, "bot", "s1", ""); code != 200 {
		t.Fatal("a budget of session s2 stopped session s1")
	}
	// A session's SVID over HTTP is attributed to that session, and its
	// stream passes through the egress proxy with the usage chunk.
	sess := userClient(t, d, admin, "session:bot/s9")
	resp, err := sess.Raw(ctx, "POST", "/v1/chat/completions", strings.NewReader(
		`{"model":"default","stream":true,"messages":[{"role":"user","content":"hi"}]}`), "application/json")
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || !bytes.Contains(stream, []byte(`"usage":{`)) || !bytes.HasSuffix(stream, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream %q: %s", resp.Header.Get("Content-Type"), stream)
	}
	rep, err = admin.Usage(ctx, "bot", "s9", "")
	if err != nil || rep.Total.Requests != 1 || rep.Total.CompletionTokens != 4 {
		t.Fatalf("s9 usage %+v %v", rep, err)
	}
	for _, r := range llm.Requests() {
		if r.Authorization != "Bearer "+key {
			t.Fatalf("provider saw Authorization %q", r.Authorization)
		}
	}
}

// TestModelsCLI drives agentcloud models and usage against a daemon.
func TestModelsCLI(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cli.Main(ctx, append([]string{"--data", d.DataDir()}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if _, err := admin.SetSecret(ctx, "K", api.SecretRequest{Value: "k", AllowHosts: []string{"llm.example"}}); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run("models", "add", "p1", "--base-url", "https://llm.example/v1", "--secret", "K",
		"--models", "default=gpt-x,emb", "--priority", "2", "--timeout", "5s", "--price", "default=0.15/0.60", "--trusted"); code != 0 {
		t.Fatalf("models add: %d %s", code, errs)
	}
	code, out, errs := run("--output", "json", "models", "list")
	var ps []api.ModelProvider
	if code != 0 || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 1 || ps[0].Prices["default"].Output != 0.60 || ps[0].Timeout != "5s" ||
		!ps[0].Trusted || ps[0].AllowPrivate {
		t.Fatalf("models list: %d %s %s", code, out, errs)
	}
	if code, _, errs := run("models", "add", "local", "--base-url", "http://127.0.0.1:8000/v1", "--models", "llama", "--allow-private"); code != 0 {
		t.Fatalf("models add --allow-private: %d %s", code, errs)
	}
	if code, out, _ := run("models", "list"); code != 0 || !strings.Contains(out, "TRUSTED") || !strings.Contains(out, "PRIVATE") {
		t.Fatalf("models list table: %d %s", code, out)
	}
	if code, _, errs := run("models", "budget", "--agent", "bot", "--tokens", "1000"); code != 0 {
		t.Fatalf("models budget: %s", errs)
	}
	bs, err := admin.ModelBudgets(ctx, "bot")
	if err != nil || len(bs) != 1 || bs[0].Tokens != 1000 {
		t.Fatalf("budgets %+v %v", bs, err)
	}
	code, out, errs = run("--output", "json", "usage", "--agent", "bot")
	var rep api.UsageReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("usage: %d %s %s", code, out, errs)
	}
	// Bad input names the flag or field.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"models", "add", "p2", "--models", "m"}, "--base-url"},
		{[]string{"models", "add", "p2", "--base-url", "http://x"}, "--models"},
		{[]string{"models", "add", "p2", "--base-url", "http://x", "--models", "m", "--price", "m=cheap"}, "--price"},
		{[]string{"models", "add", "Bad", "--base-url", "http://x", "--models", "m"}, "field: name"},
		{[]string{"models", "budget", "--tokens", "5"}, "--agent"},
		{[]string{"models", "budget", "--agent", "a", "--tokens", "lots"}, "--tokens"},
		{[]string{"models", "remove", "nope"}, "not found"},
		{[]string{"usage", "--session", "s"}, "--agent"},
	} {
		if code, _, errs := run(tc.args...); code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d, stderr %q should mention %q", tc.args, code, errs, tc.want)
		}
	}
	for _, n := range []string{"p1", "local"} {
		if code, _, errs := run("models", "remove", n); code != 0 {
			t.Fatalf("models remove %s: %s", n, errs)
		}
	}
	if code, _, _ := run("models", "remove", "p1"); code == 0 {
		t.Fatal("removing a removed provider succeeded")
	}
}

// BenchmarkModelGatewayDaemon measures a chat completion through a whole
// daemon over loopback: bearer authentication, Cedar, the gateway, the
// usage record (fsync per write), and for uncached calls the egress proxy
// and a fake provider. Reports p50/p99 in microseconds.
func BenchmarkModelGatewayDaemon(b *testing.B) {
	_, admin := startDaemonWith(b, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	llm := openaitest.New(b, "llm")
	base := strings.Replace(llm.BaseURL(), "127.0.0.1", "llm.test", 1)
	if _, err := admin.SetSecret(ctx, "K", api.SecretRequest{Value: "sk-bench-0123456789", AllowHosts: []string{hostPort(b, base)}, AllowHTTP: true}); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "llm", Secret: "K", Models: []string{"default"},
		BaseURL: base}); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  map[string]any
	}{
		{"uncached", map[string]any{"model": "default", "messages": []map[string]string{{"role": "user", "content": "hi"}}}},
		{"cached", map[string]any{"model": "default", "temperature": 0, "messages": []map[string]string{{"role": "user", "content": "hi"}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				if _, _, err := admin.ChatCompletion(ctx, tc.req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_us")
		})
	}
}
