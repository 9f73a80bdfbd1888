package daemon_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// leaky is a loopback upstream that echoes the Authorization header it
// got in a header, the body, base64 and percent-encoded, and records it.
type leaky struct {
	mu    sync.Mutex
	auths []string
	srv   *httptest.Server
}

func newLeaky(t *testing.T, tls bool) *leaky {
	l := &leaky{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		l.mu.Lock()
		l.auths = append(l.auths, auth)
		l.mu.Unlock()
		w.Header().Set("X-Echo", auth)
		w.Header().Set("X-Echo-B64", base64.StdEncoding.EncodeToString([]byte(auth)))
		io.WriteString(w, "plain="+auth+"\nb64="+base64.StdEncoding.EncodeToString([]byte(auth))+
			"\npct="+url.QueryEscape(auth)+"\nhex="+hex.EncodeToString([]byte(auth))+"\nend\n")
	})
	if tls {
		l.srv = httptest.NewTLSServer(h)
	} else {
		l.srv = httptest.NewServer(h)
	}
	t.Cleanup(l.srv.Close)
	return l
}

func (l *leaky) seen() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.auths...)
}

// url names the upstream as host (resolved to loopback by the test resolver).
func (l *leaky) url(host string) string {
	u, _ := url.Parse(l.srv.URL)
	return u.Scheme + "://" + host + ":" + u.Port() + "/"
}

// carriesSecret reports whether s holds value in any of the forms the
// leaky upstream echoes.
func carriesSecret(s, value string) bool {
	auth := "Bearer " + value
	for _, f := range []string{value, base64.StdEncoding.EncodeToString([]byte(auth)), url.QueryEscape(auth),
		url.QueryEscape(value), hex.EncodeToString([]byte(value)), hex.EncodeToString([]byte(auth))} {
		if strings.Contains(s, f) {
			return true
		}
	}
	return false
}

// headersAgent fetches ?url= with ?auth= and returns the response's
// status, headers and body as text.
const headersAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    try {
      const r = await fetch(u.searchParams.get("url"), {headers: {"Authorization": u.searchParams.get("auth")}});
      let out = "status " + r.status + "\n";
      for (const [k, v] of r.headers) out += k + ": " + v + "\n";
      return new Response(out + "\n" + await r.text());
    } catch (e) {
      return new Response("ERR " + String((e && e.message) || e), {status: 599});
    }
  }
};`

// TestSecretSchemePortClass: a secret goes only over https to an allowed
// host and port (443 unless allow_hosts names one); plain http only when
// the secret allows it. Every way a secret leaves is checked: a session's
// fetch, a sandbox's proxy (http and intercepted https), a tool registry
// upstream and a model provider.
func TestSecretSchemePortClass(t *testing.T) {
	tlsUp, plainUp := newLeaky(t, true), newLeaky(t, false)
	roots := x509.NewCertPool()
	roots.AddCert(tlsUp.srv.Certificate())
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true, UpstreamRoots: roots})
	ctx := context.Background()
	// Both hosts are trusted, so reading them keeps the session able to
	// send (the lethal-trifecta rule is another test's subject).
	if err := admin.SetTrustedHosts(ctx, []string{"api.test", "example.com"}); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, d, admin, "user:alice")
	const value = "sk-dest-3c2b1a0f9e8d7c6b"
	httpsURL := tlsUp.url("example.com") // the test certificate names example.com
	httpURL := plainUp.url("api.test")
	set := func(name string, allowHTTP bool, hosts ...string) {
		t.Helper()
		if _, err := alice.SetSecret(ctx, name, api.SecretRequest{Value: value, AllowHosts: hosts, AllowHTTP: allowHTTP}); err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
	}
	set("TLS_PORT", false, hostPort(t, httpsURL))                         // https, the upstream's port
	set("TLS_443", false, "example.com")                                  // https, port 443 only
	set("HTTP_NOT_ALLOWED", false, hostPort(t, httpURL))                  // the right host and port, but http
	set("HTTP_ALLOWED", true, hostPort(t, httpURL))                       // plain http allowed on that port
	set("HTTP_WRONG_PORT", true, "api.test", "api.test:1", "example.com") // http allowed, not that port
	egressList := `"api.test","example.com","` + hostPort(t, httpsURL) + `","` + hostPort(t, httpURL) + `"`
	man := `{"name":"dest","entry":"agent.js","egress":[` + egressList + `],
	  "secrets":["TLS_PORT","TLS_443","HTTP_NOT_ALLOWED","HTTP_ALLOWED","HTTP_WRONG_PORT"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, echoAgent); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		secret, target string
		ok             bool
		why            string
	}{
		{"TLS_PORT", httpsURL, true, ""},
		{"TLS_443", httpsURL, false, "port"},
		{"HTTP_NOT_ALLOWED", httpURL, false, "allow_http"},
		{"HTTP_ALLOWED", httpURL, true, ""},
		{"HTTP_WRONG_PORT", httpURL, false, "port"},
		{"TLS_PORT", strings.Replace(httpsURL, "https:", "http:", 1), false, "allow_http"},
	}
	for _, tc := range cases {
		before := len(tlsUp.seen()) + len(plainUp.seen())
		code, body := get(t, alice, "dest", "s1", tc.target, "Bearer {{secret:"+tc.secret+"}}")
		after := len(tlsUp.seen()) + len(plainUp.seen())
		if tc.ok {
			if code != 200 || after != before+1 {
				t.Errorf("session fetch %s to %s: %d %s", tc.secret, tc.target, code, body)
			}
			continue
		}
		if code != 599 || after != before || !strings.Contains(body, tc.why) {
			t.Errorf("session fetch %s to %s: want refused (%s) before leaving, got %d %q (upstream hits %d→%d)", tc.secret, tc.target, tc.why, code, body, before, after)
		}
	}
	for _, a := range append(tlsUp.seen(), plainUp.seen()...) {
		if a != "Bearer "+value {
			t.Errorf("an upstream saw %q", a)
		}
	}

	// A tool registry upstream over plain http: its credential is refused
	// unless the secret allows http to that port.
	srv := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	echoTool(srv, "Echo text back.")
	auth := &headerLog{name: "Authorization"}
	up := upstreamMCP(t, srv, auth)
	if _, err := admin.SetSecret(ctx, "upkey", api.SecretRequest{Value: value, AllowHosts: []string{hostPort(t, up.URL)}}); err != nil {
		t.Fatal(err)
	}
	_, err := admin.AddToolUpstream(ctx, api.ToolRegistryAddRequest{Name: "up", MCPURL: up.URL,
		Credential: &api.ToolCredential{Secret: "upkey", Header: "Authorization", Format: "Bearer {}"}})
	if err == nil || !strings.Contains(err.Error(), "allow_http") {
		t.Errorf("registry upstream over http with an https-only secret: %v", err)
	}
	for _, a := range auth.all() {
		if strings.Contains(a, value) {
			t.Errorf("registry upstream saw the secret: %q", a)
		}
	}

	// A model provider: refused when added, and refused at call time if
	// the secret is narrowed afterwards.
	llm := openaitest.New(t, "llm")
	base := strings.Replace(llm.BaseURL(), "127.0.0.1", "llm.test", 1)
	if _, err := admin.SetSecret(ctx, "LLM", api.SecretRequest{Value: value, AllowHosts: []string{hostPort(t, base)}}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.AddModelProvider(ctx, api.ModelProvider{Name: "llm", BaseURL: base, Secret: "LLM", Models: []string{"default"}})
	wantKind(t, "provider over http with an https-only secret", err, api.KindValidation, "--allow-http")
	if _, err := admin.SetSecret(ctx, "LLM", api.SecretRequest{Value: value, AllowHosts: []string{"llm.test"}, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	_, err = admin.AddModelProvider(ctx, api.ModelProvider{Name: "llm", BaseURL: base, Secret: "LLM", Models: []string{"default"}})
	wantKind(t, "provider on a port its secret does not allow", err, api.KindValidation, "--allow-host "+hostPort(t, base))
	if _, err := admin.SetSecret(ctx, "LLM", api.SecretRequest{Value: value, AllowHosts: []string{hostPort(t, base)}, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddModelProvider(ctx, api.ModelProvider{Name: "llm", BaseURL: base, Secret: "LLM", Models: []string{"default"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetSecret(ctx, "LLM", api.SecretRequest{Value: value, AllowHosts: []string{hostPort(t, base)}}); err != nil {
		t.Fatal(err)
	}
	_, _, err = admin.ChatCompletion(ctx, map[string]any{"model": "default", "messages": []map[string]string{{"role": "user", "content": "hi"}}})
	if err == nil || len(llm.Requests()) != 0 {
		t.Errorf("model call after the secret lost allow_http: %v, %d requests reached the provider", err, len(llm.Requests()))
	}

	// Bad allow_hosts entries are refused with the entry's field named.
	for _, bad := range []string{"api.test:0", "api.test:99999", "https://api.test", "api.test:443:1", "[::1]:443", "*", "a b.test"} {
		_, err := alice.SetSecret(ctx, "BAD", api.SecretRequest{Value: "x", AllowHosts: []string{"ok.test", bad}})
		wantKind(t, "allow_hosts "+bad, err, api.KindValidation, bad)
		if p := api.AsProblem(err); p == nil || p.Field != "allow_hosts[1]" {
			t.Errorf("allow_hosts %s: problem %+v does not name allow_hosts[1]", bad, p)
		}
	}

	// A sandbox: the same rules in its proxy, for plain http and for
	// intercepted https.
	needSandboxes(t)
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Egress: []string{"api.test", "example.com", hostPort(t, httpsURL), hostPort(t, httpURL)},
		Secrets: []string{"TLS_PORT", "TLS_443", "HTTP_NOT_ALLOWED", "HTTP_ALLOWED"}})
	if err != nil {
		t.Fatal(err)
	}
	curl := func(secret, target string) string {
		_, out := run(t, alice, sb.ID, "curl -sS -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer {{secret:"+secret+"}}' "+target)
		return out
	}
	for _, tc := range []struct{ secret, target, want string }{
		{"HTTP_ALLOWED", httpURL, "200"},
		{"HTTP_NOT_ALLOWED", httpURL, "403"},
		{"TLS_PORT", httpsURL, "200"},
		{"TLS_443", httpsURL, "403"},
	} {
		before := len(tlsUp.seen()) + len(plainUp.seen())
		if got := curl(tc.secret, tc.target); got != tc.want {
			t.Errorf("sandbox %s to %s: %s, want %s", tc.secret, tc.target, got, tc.want)
		}
		if n := len(tlsUp.seen()) + len(plainUp.seen()) - before; (tc.want == "200") != (n == 1) {
			t.Errorf("sandbox %s to %s: %d upstream hits", tc.secret, tc.target, n)
		}
	}
}

// TestEgressResponseScrubClass: an upstream that echoes the credential it
// was sent (in a header, the body, base64 and percent-encoded) cannot hand
// it to the session or sandbox that used the placeholder: every exchange's
// response is scrubbed of the values substituted into it, whether it went
// out from agent code's fetch, a sandbox over plain http, or a sandbox over
// intercepted https.
func TestEgressResponseScrubClass(t *testing.T) {
	tlsUp, plainUp := newLeaky(t, true), newLeaky(t, false)
	roots := x509.NewCertPool()
	roots.AddCert(tlsUp.srv.Certificate())
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true, UpstreamRoots: roots})
	ctx := context.Background()
	if err := admin.SetTrustedHosts(ctx, []string{"api.test", "example.com"}); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, d, admin, "user:alice")
	const value = "sk-scrub-9f8e7d6c5b4a3f2e"
	httpsURL, httpURL := tlsUp.url("example.com"), plainUp.url("api.test")
	if _, err := alice.SetSecret(ctx, "KEY", api.SecretRequest{Value: value, AllowHTTP: true,
		AllowHosts: []string{hostPort(t, httpsURL), hostPort(t, httpURL)}}); err != nil {
		t.Fatal(err)
	}
	man := `{"name":"scrub","entry":"agent.js","egress":["` + hostPort(t, httpsURL) + `","` + hostPort(t, httpURL) + `"],"secrets":["KEY"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, headersAgent); err != nil {
		t.Fatal(err)
	}
	check := func(what, out string) {
		t.Helper()
		if carriesSecret(out, value) {
			t.Errorf("%s: the secret came back: %q", what, out)
		}
		for _, want := range []string{"plain=Bearer [secret KEY]", "end"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: %q missing from %q", what, want, out)
			}
		}
		if !strings.Contains(strings.ToLower(out), "x-echo: bearer [secret key]") {
			t.Errorf("%s: echoed header not scrubbed in place: %q", what, out)
		}
	}
	for _, target := range []string{httpURL, httpsURL} {
		code, body := get(t, alice, "scrub", "s1", target, "Bearer {{secret:KEY}}")
		if code != 200 {
			t.Fatalf("session fetch %s: %d %s", target, code, body)
		}
		check("session fetch "+target, body)
	}
	n := len(tlsUp.seen()) + len(plainUp.seen())
	for _, a := range append(tlsUp.seen(), plainUp.seen()...) {
		if a != "Bearer "+value {
			t.Fatalf("upstream saw %q", a)
		}
	}

	needSandboxes(t)
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Egress: []string{"api.test", "example.com", hostPort(t, httpsURL), hostPort(t, httpURL)}, Secrets: []string{"KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{httpURL, httpsURL} {
		code, out := run(t, alice, sb.ID, "curl -sS -i -H 'Authorization: Bearer {{secret:KEY}}' "+target)
		if code != 0 {
			t.Fatalf("sandbox curl %s: %d %q", target, code, out)
		}
		check("sandbox "+target, out)
		// Asking for gzip does not hide the value from the scrubber.
		code, out = run(t, alice, sb.ID, "curl -sS -i --compressed -H 'Authorization: Bearer {{secret:KEY}}' "+target)
		if code != 0 {
			t.Fatalf("sandbox curl --compressed %s: %d %q", target, code, out)
		}
		check("sandbox gzip "+target, out)
	}
	if got := len(tlsUp.seen()) + len(plainUp.seen()); got != n+4 {
		t.Fatalf("upstream hits %d, want %d", got, n+4)
	}
}
