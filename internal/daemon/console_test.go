package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/console"
)

// consoleBrowser is a cookie-keeping HTTP client signed in to the console.
type consoleBrowser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func consoleSignIn(t *testing.T, base, token string) *consoleBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &consoleBrowser{t: t, base: base, hc: &http.Client{Jar: jar}}
	code, body := b.do("POST", console.SessionPath, `{"token":"`+token+`"}`, "")
	if code != 200 {
		t.Fatalf("console sign-in: %d %s", code, body)
	}
	var info console.SessionInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatal(err)
	}
	b.csrf = info.CSRFToken
	return b
}

func (b *consoleBrowser) do(method, path, body, csrf string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if csrf != "" {
		req.Header.Set(console.CSRFHeader, csrf)
	}
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(out)
}

// TestConsoleSessionClass runs the console's cookie sessions against the
// daemon's real front door, authentication and Cedar: a tenant sees and
// touches only what its token may (two tenants); every mutating route
// refuses a call without the session's CSRF token, whoever's session it
// is; revoking the token ends what the session may do at once.
func TestConsoleSessionClass(t *testing.T) {
	d, admin := startDaemon(t)
	ctx := context.Background()
	base := "http://" + d.Addr()
	aliceTok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:alice", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:bob", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, d, admin, "user:alice")
	if err := deployJS(alice, `{"name":"alicebot","entry":"agent.js"}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	ab, bb := consoleSignIn(t, base, aliceTok.Token), consoleSignIn(t, base, bobTok.Token)
	if code, body := ab.do("GET", "/v1/agents", "", ""); code != 200 || !strings.Contains(body, `"alicebot"`) {
		t.Fatalf("alice's agents through the console: %d %s", code, body)
	}
	if code, body := bb.do("GET", "/v1/agents", "", ""); code != 200 || strings.Contains(body, "alicebot") {
		t.Fatalf("bob's agents through the console: %d %s", code, body)
	}
	for _, p := range []string{"/v1/agents/alicebot", "/v1/agents/alicebot/versions", "/v1/agents/alicebot/sessions"} {
		if code, _ := bb.do("GET", p, "", ""); code != 403 && code != 404 {
			t.Errorf("bob reads %s through the console: %d", p, code)
		}
	}
	if code, _ := bb.do("GET", "/agents/alicebot/sessions/s1/", "", ""); code != 403 && code != 404 {
		t.Errorf("bob calls alice's agent through the console: %d", code)
	}
	if code, _ := bb.do("DELETE", "/v1/agents/alicebot/sessions/s1", "", bb.csrf); code != 403 && code != 404 {
		t.Errorf("bob deletes alice's session through the console: %d", code)
	}
	// The CSRF class over real routes: nothing runs without the token.
	mutating := []struct{ method, path, body string }{
		{"POST", "/v1/sandboxes", `{}`},
		{"PUT", "/v1/policies", `{"text":""}`},
		{"POST", "/v1/tokens", `{"subject":"user:mallory"}`},
		{"POST", "/agents/alicebot/sessions/s1/", `x`},
		{"DELETE", "/v1/agents/alicebot/sessions/s1", ``},
		{"PUT", "/v1/secrets/K", `{"value":"v","allow_hosts":["a.example"]}`},
		{"POST", "/v1/ledger/verify", ``},
	}
	for _, b := range []*consoleBrowser{ab, bb} {
		for _, m := range mutating {
			for _, csrf := range []string{"", "forged", ab.csrf + bb.csrf} {
				code, body := b.do(m.method, m.path, m.body, csrf)
				if code != 403 || !strings.Contains(body, string(api.KindCSRF)) {
					t.Errorf("%s %s with CSRF %q: %d %s", m.method, m.path, csrf, code, body)
				}
			}
		}
	}
	if code, body := ab.do("POST", "/agents/alicebot/sessions/s1/", "hi", ab.csrf); code != 200 {
		t.Errorf("alice calls her agent with the CSRF token: %d %s", code, body)
	}
	// Revocation reaches the console session on its next call.
	if err := admin.RevokeToken(ctx, api.RevokeRequest{Token: aliceTok.Token}); err != nil {
		t.Fatal(err)
	}
	if code, _ := ab.do("GET", "/v1/agents", "", ""); code != 401 {
		t.Errorf("alice's console session after her token was revoked: %d", code)
	}
	if code, _ := ab.do("GET", console.SessionPath, "", ""); code != 401 {
		t.Errorf("GET %s after revocation: %d", console.SessionPath, code)
	}
}

// TestConsoleCertificateSignIn: over TLS a browser signs in with its
// client certificate (no token) and gets a Secure __Host- cookie; its
// mutating calls need the session's CSRF token, and a browser's mutating
// call with the certificate but no console session is refused, while the
// CLI's (no browser headers) is not.
func TestConsoleCertificateSignIn(t *testing.T) {
	cfg := config.Default()
	cfg.TLS = true
	d, _ := startDaemonWith(t, cfg, nil)
	caPEM, err := os.ReadFile(filepath.Join(d.DataDir(), "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	base := "https://localhost:" + strings.Split(d.Addr(), ":")[1]
	tc := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	admin := &http.Client{Transport: bearerTransport2{adminToken(t, d.DataDir()), &http.Transport{TLSClientConfig: tc}}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	body, _ := json.Marshal(api.IdentityRequest{SPIFFEID: "user:carol",
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	resp, err := admin.Post(base+"/v1/identities", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var idn api.Identity
	_ = json.NewDecoder(resp.Body).Decode(&idn)
	resp.Body.Close()
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(idn.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatalf("issued identity: %v (%d)", err, resp.StatusCode)
	}
	jar, _ := cookiejar.New(nil)
	b := &consoleBrowser{t: t, base: base, hc: &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}}}}
	const sandboxReq = `{"timeout_s":5}`
	// Before sign-in: the browser's certificate alone cannot change anything.
	if code, out := b.do("POST", "/v1/sandboxes", sandboxReq, ""); code != 403 || !strings.Contains(out, string(api.KindCSRF)) {
		t.Fatalf("browser POST with a certificate and no session: %d %s", code, out)
	}
	code, out := b.do("POST", console.SessionPath, `{"token":""}`, "")
	var info console.SessionInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != 200 || info.Method != "certificate" || !strings.HasSuffix(info.Principal, "/user/carol") {
		t.Fatalf("certificate sign-in: %d %s", code, out)
	}
	u, _ := url.Parse(base)
	var ck *http.Cookie
	for _, c := range jar.Cookies(u) {
		ck = c
	}
	if ck == nil || ck.Name != "__Host-agentcloud-console" {
		t.Fatalf("cookie after certificate sign-in: %+v", ck)
	}
	if code, out := b.do("POST", "/v1/sandboxes", sandboxReq, ""); code != 403 || !strings.Contains(out, string(api.KindCSRF)) {
		t.Errorf("certificate session POST without the CSRF token: %d %s", code, out)
	}
	if code, out := b.do("POST", "/v1/sandboxes", sandboxReq, info.CSRFToken); strings.Contains(out, string(api.KindCSRF)) || code == 401 {
		t.Errorf("certificate session POST with the CSRF token: %d %s", code, out)
	}
	if code, out := b.do("GET", "/v1/whoami", "", ""); code != 200 || !strings.Contains(out, "carol") {
		t.Errorf("whoami in the certificate session: %d %s", code, out)
	}
	// The CLI with the same certificate: no browser headers, no session.
	cli := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}}}
	res, err := cli.Post(base+"/v1/sandboxes", "application/json", strings.NewReader(sandboxReq))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == 403 || res.StatusCode == 401 {
		t.Errorf("CLI POST with a certificate: %d", res.StatusCode)
	}
}
