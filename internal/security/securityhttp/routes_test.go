package securityhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

// noAgents is an AgentDirectory with no agent deployed.
type noAgents struct{}

func (noAgents) AgentInfo(context.Context, string) (session.AgentInfo, bool, error) {
	return session.AgentInfo{}, false, nil
}

const maxBody = 64 << 10

// server is the security routes alone on a real router, over a real
// embedded store, with the admin token and tokens for alice and bob.
type server struct {
	url               string
	admin, alice, bob string
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := auth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := security.New(ctx, security.Config{TrustDomain: "agentcloud.local", CADir: filepath.Join(dir, "ca"), DataDir: dir},
		security.Deps{Store: st, Bootstrap: boot, Agents: noAgents{}, PrincipalFrom: securityhttp.PrincipalFrom})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := sec.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: securityhttp.Auth{Sec: sec}, Authz: securityhttp.Auth{Sec: sec}, MaxBodyBytes: maxBody})
	securityhttp.Routes(rt, sec, nil)
	hs := httptest.NewServer(rt)
	t.Cleanup(func() {
		hs.Close()
		if err := sec.Close(ctx); err != nil {
			t.Error(err)
		}
		st.Close()
	})
	tok, err := os.ReadFile(filepath.Join(dir, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	s := &server{url: hs.URL, admin: strings.TrimSpace(string(tok))}
	for _, u := range []struct {
		name string
		tok  *string
	}{{"alice", &s.alice}, {"bob", &s.bob}} {
		code, body := s.do(t, s.admin, "POST", "/v1/tokens", `{"subject":"user:`+u.name+`"}`)
		if code != http.StatusCreated {
			t.Fatalf("token for %s: %d %s", u.name, code, body)
		}
		var out api.Token
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		*u.tok = out.Token
	}
	return s
}

func (s *server) do(t *testing.T, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Errorf("%s %s: %d with Content-Type %q, want problem+json", method, path, resp.StatusCode, ct)
		}
		var p api.Problem
		if err := json.Unmarshal(out, &p); err != nil || p.Type == "" {
			t.Errorf("%s %s: %d without a problem type: %s", method, path, resp.StatusCode, out)
		}
	}
	return resp.StatusCode, out
}

// TestSecurityRoutesHostileInputClass sends malformed, oversized and
// unauthorized requests to every kind of security route, and another
// user's ids: each is a 4xx problem+json naming its kind, never a 5xx, and
// nothing it asked for happens.
func TestSecurityRoutesHostileInputClass(t *testing.T) {
	s := newServer(t)
	if code, body := s.do(t, s.alice, "PUT", "/v1/secrets/alice-key", `{"value":"v1","allow_hosts":["api.example.com"]}`); code != http.StatusOK {
		t.Fatalf("alice sets her secret: %d %s", code, body)
	}
	huge := `{"value":"` + string(bytes.Repeat([]byte("x"), 2*maxBody)) + `","allow_hosts":["a.example"]}`
	long := strings.Repeat("k", 300)
	cases := []struct {
		name, token, method, path, body string
		want                            int
	}{
		{"token: malformed json", "admin", "POST", "/v1/tokens", `{"subject":`, http.StatusBadRequest},
		{"token: unknown field", "admin", "POST", "/v1/tokens", `{"subject":"user:x","admin":true}`, http.StatusBadRequest},
		{"token: bad subject", "admin", "POST", "/v1/tokens", `{"subject":"wizard:merlin"}`, http.StatusUnprocessableEntity},
		{"token: ttl past the limit", "admin", "POST", "/v1/tokens", `{"subject":"user:x","ttl":"9999h"}`, http.StatusUnprocessableEntity},
		{"token: for another user", "alice", "POST", "/v1/tokens", `{"subject":"user:bob"}`, http.StatusForbidden},
		{"token: no credentials", "", "POST", "/v1/tokens", `{"subject":"user:x"}`, http.StatusUnauthorized},
		{"revoke: malformed json", "alice", "POST", "/v1/tokens/revoke", `[1,2`, http.StatusBadRequest},
		{"identity: malformed json", "admin", "POST", "/v1/identities", `{"csr":1}`, http.StatusBadRequest},
		{"identity: not a CSR", "admin", "POST", "/v1/identities", `{"spiffe_id":"spiffe://agentcloud.local/user/x","csr":"-----BEGIN NOTHING-----"}`, http.StatusUnprocessableEntity},
		{"policies: malformed json", "admin", "PUT", "/v1/policies", `{"text":`, http.StatusBadRequest},
		{"policies: not cedar", "admin", "PUT", "/v1/policies", `{"text":"permit(everyone);"}`, http.StatusUnprocessableEntity},
		{"policies: by a user", "alice", "PUT", "/v1/policies", `{"text":""}`, http.StatusForbidden},
		{"policy test: bad principal", "admin", "POST", "/v1/policies/test", `{"principal":"???","action":"agent.read","resource":"Agent::\"x\""}`, http.StatusUnprocessableEntity},
		{"trusted hosts: bad pattern", "admin", "PUT", "/v1/trusted-hosts", `{"hosts":["exa mple.com"]}`, http.StatusUnprocessableEntity},
		{"private hosts: by a user", "bob", "PUT", "/v1/private-hosts", `{"hosts":["bob.example"]}`, http.StatusForbidden},
		{"audit: by a user", "bob", "GET", "/v1/audit", ``, http.StatusForbidden},
		{"secret: oversized body", "alice", "PUT", "/v1/secrets/big", huge, http.StatusRequestEntityTooLarge},
		{"secret: over-long name", "alice", "PUT", "/v1/secrets/" + long, `{"value":"v","allow_hosts":["a.example"]}`, http.StatusBadRequest},
		{"secret: malformed json", "alice", "PUT", "/v1/secrets/k2", `{"value":`, http.StatusBadRequest},
		{"secret: another user's, read", "bob", "GET", "/v1/secrets/alice-key", ``, http.StatusForbidden},
		{"secret: another user's, replaced", "bob", "PUT", "/v1/secrets/alice-key", `{"value":"bob","allow_hosts":["evil.example"]}`, http.StatusForbidden},
		{"secret: another user's, deleted", "bob", "DELETE", "/v1/secrets/alice-key", ``, http.StatusForbidden},
		{"approval: someone else's or none, by a user", "bob", "POST", "/v1/approvals/nope/approve", ``, http.StatusForbidden},
		{"approval: none, by the administrator", "admin", "POST", "/v1/approvals/nope/deny", ``, http.StatusNotFound},
		{"approval: over-long id", "admin", "POST", "/v1/approvals/" + long + "/approve", ``, http.StatusBadRequest},
		{"labels: another user's session", "bob", "DELETE", "/v1/agents/bot/sessions/s1/labels", ``, http.StatusForbidden},
	}
	tokens := map[string]string{"admin": s.admin, "alice": s.alice, "bob": s.bob, "": ""}
	for _, c := range cases {
		code, body := s.do(t, tokens[c.token], c.method, c.path, c.body)
		if code != c.want {
			t.Errorf("%s: %s %s = %d, want %d: %s", c.name, c.method, c.path, code, c.want, body)
		}
		if code >= 500 {
			t.Errorf("%s: server error %d", c.name, code)
		}
	}
	// Nothing bob tried happened to alice's secret.
	code, body := s.do(t, s.alice, "GET", "/v1/secrets/alice-key", "")
	var sec api.Secret
	if code != http.StatusOK || json.Unmarshal(body, &sec) != nil || len(sec.AllowHosts) != 1 || sec.AllowHosts[0] != "api.example.com" {
		t.Fatalf("alice's secret after bob's attempts: %d %s", code, body)
	}
}
