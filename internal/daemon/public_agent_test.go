package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
)

// publicAgent answers with what it was sent: method, path, and whether
// credentials reached it.
const publicAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    return new Response(request.method + " " + u.pathname + u.search + " auth=" + (request.headers.get("authorization") !== null) +
      " cookie=" + (request.headers.get("cookie") !== null));
  }
}`

// TestPublicAgentRoutesClass: an agent whose manifest opts in serves its
// public sessions at /public/{agent}/{session}/... to anyone, without a
// token, and its A2A agent card (with ETag); credentials never reach the
// agent. Everything else is a 404 problem that says nothing of whether a
// private agent exists: an agent that is not public, one that does not
// exist, a session the manifest does not open; a method it does not open
// is a 405 with Allow. The platform routes stay behind authentication.
// Malformed public sections are refused at deploy with a 4xx naming the
// field.
func TestPublicAgentRoutesClass(t *testing.T) {
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	roomyAnonymousLimit(&cfg) // its own ~25 anonymous requests come in a burst
	d, admin := startDaemonWith(t, cfg, nil)
	base := "http://" + d.Addr()
	if err := deployJS(admin, `{"name":"pub","description":"says what it got","entry":"agent.js","public":{"sessions":["www","api"],"methods":["GET","POST"],
		"version":"2.0.0","skills":[{"id":"echo","name":"Echo","tags":["test"]}]}}`, publicAgent); err != nil {
		t.Fatal(err)
	}
	if err := deployJS(admin, `{"name":"priv","entry":"agent.js"}`, publicAgent); err != nil {
		t.Fatal(err)
	}
	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/public/pub/www", "GET / auth=false cookie=false"},
		{"GET", "/public/pub/www/a/b?x=1", "GET /a/b?x=1 auth=false cookie=false"},
		{"POST", "/public/pub/api/submit", "POST /submit auth=false cookie=false"},
	} {
		resp, body := do(tc.method, tc.path, map[string]string{"Authorization": "Bearer not-a-token", "Cookie": "s=1"})
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%s %s: %d %q, want %q", tc.method, tc.path, resp.StatusCode, body, tc.want)
		}
		if resp.Header.Get("RateLimit-Policy") == "" {
			t.Errorf("%s %s: no RateLimit-Policy: the front door did not see it", tc.method, tc.path)
		}
	}
	notFound := []string{"/public/priv/www", "/public/priv/www/x", "/public/nobody/www", "/public/pub/other/x",
		"/public/priv/.well-known/agent-card.json", "/public/nobody/.well-known/agent-card.json"}
	for _, p := range notFound {
		resp, body := do("GET", p, nil)
		if resp.StatusCode != 404 || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") || strings.Contains(body, "priv\" is not") {
			t.Errorf("GET %s: %d %s %s", p, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if _, b1 := do("GET", "/public/priv/www", nil); !strings.Contains(b1, `no public agent \"priv\"`) {
		t.Errorf("private agent: %s", b1)
	}
	for _, m := range []string{"DELETE", "PUT", "PATCH"} {
		if resp, body := do(m, "/public/pub/www/x", nil); resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: %d %v %s", m, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	for _, p := range []string{"/public/pub/../v1/agents", "/public/PUB/www", "/public/pub/" + strings.Repeat("s", 200) + "/x"} {
		if resp, body := do("GET", p, nil); resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
		}
	}
	// The platform's own routes still need a token.
	for _, p := range []string{"/v1/agents", "/agents/pub/sessions/www", "/v1/agents/pub"} {
		if resp, _ := do("GET", p, nil); resp.StatusCode != 401 {
			t.Errorf("GET %s without a token: %d", p, resp.StatusCode)
		}
	}
	// The agent card.
	resp, body := do("GET", "/public/pub/.well-known/agent-card.json", nil)
	var card api.AgentCard
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &card) != nil {
		t.Fatalf("card: %d %s", resp.StatusCode, body)
	}
	if card.Name != "pub" || card.Description != "says what it got" || card.Version != "2.0.0" || card.URL != base+"/public/pub/www" ||
		len(card.Skills) != 1 || card.Skills[0].ID != "echo" || card.SecuritySchemes["platformToken"].Scheme != "bearer" ||
		len(card.Capabilities.Extensions) != 2 || card.ProtocolVersion == "" {
		t.Errorf("card: %+v", card)
	}
	limits, _ := json.Marshal(card.Capabilities.Extensions[0].Params["limits"])
	if !strings.Contains(string(limits), `"name":"anonymous"`) {
		t.Errorf("card limits: %s", limits)
	}
	if resp, _ := do("GET", "/public/pub/.well-known/agent-card.json", map[string]string{"If-None-Match": resp.Header.Get("ETag")}); resp.StatusCode != 304 {
		t.Errorf("card with If-None-Match: %d", resp.StatusCode)
	}
	// Malformed public sections: 4xx naming the field, at deploy.
	for field, man := range map[string]string{
		"public.sessions":        `{"name":"bad","entry":"agent.js","public":{}}`,
		"public.methods[0]":      `{"name":"bad","entry":"agent.js","public":{"sessions":["w"],"methods":["CONNECT"]}}`,
		"public.sessions[0]":     `{"name":"bad","entry":"agent.js","public":{"sessions":["a/b"]}}`,
		"public.skills[0].name":  `{"name":"bad","entry":"agent.js","public":{"sessions":["w"],"skills":[{"id":"x"}]}}`,
		"public":                 `{"name":"bad","entry":"agent.js","public":"yes"}`,
		"public.skills[0].extra": `{"name":"bad","entry":"agent.js","public":{"sessions":["w"],"skills":[{"id":"x","name":"X","extra":1}]}}`,
	} {
		_, err := admin.Deploy(context.Background(), rawTarGz(t, map[string]string{"agent.json": man, "agent.js": publicAgent}))
		var p *api.Problem
		if !errors.As(err, &p) || p.Status < 400 || p.Status >= 500 || len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestPublicFloodClass: an anonymous flood of a public agent is limited
// by the front door (429 with Retry-After, problem naming the limit) while
// an authenticated user's calls to the same session, at the same time,
// are all served.
func TestPublicFloodClass(t *testing.T) {
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	d, admin := startDaemonWith(t, cfg, nil)
	if err := deployJS(admin, `{"name":"pub","entry":"agent.js","public":{"sessions":["www"]}}`, publicAgent); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, d, admin, "user:alice")
	if err := deployJS(alice, `{"name":"mine","entry":"agent.js"}`, publicAgent); err != nil {
		t.Fatal(err)
	}
	url := "http://" + d.Addr() + "/public/pub/www/x"
	var mu sync.Mutex
	codes := map[int]int{}
	var retryAfter string
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				resp, err := http.Get(url)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == 429 {
					retryAfter = resp.Header.Get("Retry-After")
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < 10; i++ {
		resp, err := alice.Call(context.Background(), "mine", "s", "GET", "/y", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("alice's call %d during the anonymous flood: %d %s", i, resp.StatusCode, b)
		}
	}
	wg.Wait()
	if codes[429] == 0 || retryAfter == "" || codes[200] == 0 {
		t.Errorf("anonymous flood of 200 requests: %v (Retry-After %q); want some served and the rest limited", codes, retryAfter)
	}
}
