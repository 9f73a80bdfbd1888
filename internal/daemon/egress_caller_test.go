package daemon_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
)

const callerAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    try {
      switch (u.pathname) {
      case "/fetch": { const r = await fetch(u.searchParams.get("u")); return new Response(await r.text()); }
      case "/tool": return Response.json(await env.tools.call("http_fetch", {url: u.searchParams.get("u")}));
      case "/sandbox": {
        const py = "import urllib.request as u, sys\n" +
          "try:\n  print(u.urlopen(sys.argv[1], timeout=10).read().decode())\n" +
          "except Exception as e:\n  print('refused', e)\n";
        const r = await env.sandbox.run({cmd: "python3", args: ["-c", py, u.searchParams.get("u")]});
        return new Response(r.stdout);
      }
      case "/ai": {
        const r = await env.ai.chat({model: "default", max_tokens: 50, messages: [{role: "user", content: "hi"}]});
        return new Response(r.choices[0].message.content);
      }
      }
      return new Response("no route", {status: 404});
    } catch (e) {
      return new Response(e.name + ": " + e.message, {status: 599});
    }
  }
};`

// TestEgressCallerPathsClass drives the egress paths the daemon wires (the
// tool registry's, which needs a registered upstream, is covered with the
// real proxy by internal/security's TestEgressCallerClass): a session's
// fetch(), its http_fetch tool call, its sandbox's request through the
// namespace's proxy, a user's http_fetch, and model gateway calls from a
// user and from agent code, to loopback upstreams. Each egress audit
// record names the caller the proxy decided on: its SPIFFE ID, its
// session, its purpose and its target (and sandbox).
func TestEgressCallerPathsClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	news := newRecorder(t, "news")
	llm := openaitest.New(t, "llm")
	llm.SetReply("hi from the model", 12, 4)
	base := strings.Replace(llm.BaseURL(), "127.0.0.1", "llm.test", 1)
	if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "llm", BaseURL: base, Models: []string{"default=gpt-test"}}); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, d, admin, "user:alice")
	man := `{"name":"caller","entry":"agent.js","egress":["` + news.pattern("news.test") + `"],"tools":["http_fetch"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, callerAgent); err != nil {
		t.Fatal(err)
	}
	const td = "spiffe://agentcloud.local/"
	sessID := td + "agent/caller/session/s1"
	nodeID := td + "node/" + config.Default().NodeID
	newsURL := url.QueryEscape(news.url("news.test"))
	cases := []struct {
		name                     string
		do                       func() error
		principal, session, host string
		purpose, target          string
		sandbox                  bool
	}{
		{"session fetch", func() error { return agentOK(t, alice, "/fetch?u="+newsURL) }, sessID, "caller/s1", "news.test", "session", "", false},
		{"session http_fetch", func() error { return agentOK(t, alice, "/tool?u="+newsURL) }, sessID, "caller/s1", "news.test", "session", "", false},
		{"session's sandbox", func() error {
			needSandboxes(t)
			return agentOK(t, alice, "/sandbox?u="+newsURL)
		}, td + "sandbox/", "caller/s1", "news.test", "sandbox", "", true},
		{"user http_fetch", func() error {
			_, err := alice.CallTool(ctx, "http_fetch", json.RawMessage(`{"url":"`+news.url("news.test")+`"}`))
			return err
		}, td + "user/alice", "", "news.test", "tool", "", false},
		{"model gateway from a user", func() error {
			_, _, err := alice.ChatCompletion(ctx, map[string]any{"model": "default", "messages": []map[string]string{{"role": "user", "content": "x"}}})
			return err
		}, nodeID, "", "llm.test", "model", "llm", false},
		{"model gateway from agent code", func() error { return agentOK(t, alice, "/ai") }, nodeID, "caller/s1", "llm.test", "model", "llm", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := egressEvents(t, admin)
			_ = c.do() // a refusal is audited too; the record is what this test reads
			evs := egressEvents(t, admin)
			if len(evs) <= len(before) {
				t.Fatalf("no egress audit record")
			}
			ev := evs[len(evs)-1]
			principalOK := ev.Principal == c.principal
			if c.sandbox { // spiffe://TD/sandbox/ID
				principalOK = strings.HasPrefix(ev.Principal, c.principal) && ev.Detail["sandbox"] == strings.TrimPrefix(ev.Principal, c.principal)
			}
			if !principalOK || ev.Session != c.session || ev.Resource != "Host::"+c.host ||
				ev.Detail["purpose"] != c.purpose || (c.target != "" && ev.Detail["target"] != c.target) {
				t.Fatalf("egress audit record %+v: want principal %s, session %q, host %s, purpose %s, target %q",
					ev, c.principal, c.session, c.host, c.purpose, c.target)
			}
		})
	}
}

// agentOK calls the caller agent's session s1 at path and wants a 200.
func agentOK(t *testing.T, c *client.Client, path string) error {
	t.Helper()
	resp, err := c.Call(context.Background(), "caller", "s1", "GET", path, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("%s: status %d", path, resp.StatusCode)
	}
	return nil
}

func egressEvents(t *testing.T, admin *client.Client) []api.AuditEvent {
	t.Helper()
	list, err := admin.Audit(context.Background(), client.AuditQuery{Type: "egress", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list.Events
}
