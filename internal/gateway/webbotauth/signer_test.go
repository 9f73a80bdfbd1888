package webbotauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
)

// signerOnLoopback serves s's directory over TLS on loopback and returns a
// verifier whose fetches reach it whatever host they name.
func signerOnLoopback(t *testing.T, s http.Handler, clk clock.Clock) *Verifier {
	t.Helper()
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	c := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	v, err := New(Config{RequireNonce: true}, fetchFunc(func(ctx context.Context, url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		return c.Do(req)
	}), clk)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newTestSigner(t *testing.T, clk clock.Clock) *Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key, "https://node.agentcloud.test", clk)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOutboundSignatureVerifiedClass: requests the signer signs verify
// with our own verifier, which fetches and checks the signer's served
// directory (with its possession proof) over loopback, for several
// methods, paths and hosts; a signed request whose method, path or
// authority changed afterwards, one replayed, one expired, and one whose
// Signature-Agent was swapped are refused; signatures the caller set
// before signing are replaced, not kept.
func TestOutboundSignatureVerifiedClass(t *testing.T) {
	clk := clock.NewFake(start)
	s := newTestSigner(t, clk)
	v := signerOnLoopback(t, s, clk)
	ctx := context.Background()
	sign := func(method, url string) *http.Request {
		t.Helper()
		r := httptest.NewRequest(method, url, nil)
		r.Header.Set("Signature-Input", `forged=("@authority");created=1;keyid="x";tag="web-bot-auth"`)
		r.Header.Set("Signature", `forged=:AAAA:`)
		r.Header.Set("Signature-Agent", `forged="https://evil.test"`)
		if err := s.Sign(r); err != nil {
			t.Fatal(err)
		}
		if got := r.Header.Get("Signature-Input"); strings.Contains(got, "forged") || len(r.Header.Values("Signature")) != 1 {
			t.Fatalf("the caller's signature survived: %q", got)
		}
		return r
	}
	for _, tc := range []struct{ method, url string }{
		{"GET", "https://api.example.com/v1/items?q=1"},
		{"POST", "https://other.example.org/submit"},
		{"DELETE", "https://api.example.com:8443/x/y"},
		{"GET", "https://example.net/"},
	} {
		r := sign(tc.method, tc.url)
		res := v.Verify(ctx, r)
		if res.Outcome != Verified || res.Signer != s.DirectoryURL() || res.KeyID != s.KeyID() {
			t.Fatalf("%s %s: %+v", tc.method, tc.url, res)
		}
		if res := v.Verify(ctx, r); res.Outcome != Invalid {
			t.Fatalf("%s %s replayed: %+v", tc.method, tc.url, res)
		}
	}
	for name, tamper := range map[string]func(r *http.Request){
		"method":    func(r *http.Request) { r.Method = "PUT" },
		"path":      func(r *http.Request) { r.URL.Path = "/admin" },
		"authority": func(r *http.Request) { r.Host = "victim.example.com" },
		"agent":     func(r *http.Request) { r.Header.Set("Signature-Agent", `agentcloud="https://evil.test"`) },
		"expired": func(r *http.Request) {
			clk.Advance(SignatureLifetime + time.Hour)
		},
	} {
		r := sign("GET", "https://api.example.com/v1/items")
		tamper(r)
		if res := v.Verify(ctx, r); res.Outcome == Verified {
			t.Fatalf("%s changed: verified %+v", name, res)
		}
	}
}

// TestSignerDirectoryClass: the directory is served at the well-known
// path only, to GET and HEAD only; bad keys and origins are refused when
// the signer is made, naming the field.
func TestSignerDirectoryClass(t *testing.T) {
	s := newTestSigner(t, nil)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", WellKnownPath, 200}, {"HEAD", WellKnownPath, 200}, {"POST", WellKnownPath, 405},
		{"PUT", WellKnownPath, 405}, {"GET", "/", 404}, {"GET", WellKnownPath + "/x", 404}, {"GET", "/.well-known/other", 404},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(tc.method, "https://node.agentcloud.test"+tc.path, nil))
		if w.Code != tc.code {
			t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
		if tc.code == 200 {
			keys, err := ParseDirectory(w.Body.Bytes(), 10)
			if tc.method == "GET" && (err != nil || len(keys) != 1 || keys[0].Thumbprint != s.KeyID()) {
				t.Fatalf("directory: %v %+v", err, keys)
			}
			if w.Header().Get("Content-Type") != DirectoryMediaType || w.Header().Get("Signature-Input") == "" {
				t.Fatalf("headers: %v", w.Header())
			}
		}
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		key    ed25519.PrivateKey
		origin string
		field  string
	}{
		{key[:10], "https://node.test", "key"},
		{nil, "https://node.test", "key"},
		{key, "http://node.test", "origin"},
		{key, "https://node.test/path", "origin"},
		{key, "https://user@node.test", "origin"},
		{key, "", "origin"},
	} {
		if _, err := NewSigner(tc.key, tc.origin, nil); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Fatalf("%q: %v, want an error naming %s", tc.origin, err, tc.field)
		}
	}
}
