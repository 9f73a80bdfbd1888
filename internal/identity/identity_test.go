package identity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestCA(t *testing.T, td string, clk *fakeClock) *CA {
	t.Helper()
	cfg := Config{TrustDomain: td}
	if clk != nil {
		cfg.Now = clk.Now
	}
	ca, err := LoadOrCreateCA(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestParsePrincipal(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString(DefaultTrustDomain)
	tests := []struct {
		in      string
		kind    Kind
		name    string
		agent   string
		wantErr error
	}{
		{"spiffe://agentcloud.local/user/alice", KindUser, "alice", "", nil},
		{"spiffe://agentcloud.local/agent/bot", KindAgent, "bot", "", nil},
		{"spiffe://agentcloud.local/agent/bot/session/s1", KindSession, "s1", "bot", nil},
		{"spiffe://agentcloud.local/sandbox/x1", KindSandbox, "x1", "", nil},
		{"spiffe://agentcloud.local/node/n1", KindNode, "n1", "", nil},
		{"spiffe://agentcloud.local/admin/root", KindAdmin, "root", "", nil},
		{"spiffe://other.local/user/alice", "", "", "", ErrWrongTrustDomain},
		{"spiffe://agentcloud.local/robot/r2", "", "", "", ErrUnknownKind},
		{"spiffe://agentcloud.local/user", "", "", "", ErrUnknownKind},
		{"spiffe://agentcloud.local/agent/bot/run/s1", "", "", "", ErrUnknownKind},
		{"spiffe://agentcloud.local", "", "", "", ErrUnknownKind},
		{"https://agentcloud.local/user/alice", "", "", "", ErrInvalidID},
		{"", "", "", "", ErrInvalidID},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePrincipal(td, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != tc.kind || p.Name != tc.name || p.Agent != tc.agent || p.String() != tc.in {
				t.Fatalf("got %+v", p)
			}
		})
	}
	id, err := NewID(td, KindSession, "bot/s1")
	if err != nil || id.String() != "spiffe://agentcloud.local/agent/bot/session/s1" {
		t.Fatalf("NewID session = %v, %v", id, err)
	}
	if _, err := NewID(td, KindSession, "nosession"); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("NewID bad session err = %v", err)
	}
}

func TestCAPersistence(t *testing.T) {
	dir := t.TempDir()
	ca1, err := LoadOrCreateCA(Config{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{caKeyFile, jwtKeyFile, caCertFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
	ca2, err := LoadOrCreateCA(Config{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ca1.Certificate().Equal(ca2.Certificate()) || ca1.jwtKID != ca2.jwtKID {
		t.Fatal("reloaded CA differs")
	}
	// A token issued by the first instance verifies with the second.
	id := spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice")
	tok, _, err := ca1.IssueJWT(id, []string{"api"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca2.VerifyJWT(context.Background(), tok, "api"); err != nil {
		t.Fatal(err)
	}
	// Supplied root: NewCA rejects a mismatched key.
	if _, err := NewCA(Config{}, ca1.Certificate(), ca2.jwtKey, nil); err == nil {
		t.Fatal("NewCA accepted mismatched key")
	}
	if _, err := NewCA(Config{}, ca1.Certificate(), ca1.Signer(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestX509SVID(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ca := newTestCA(t, "", clk)
	id := spiffeid.RequireFromString("spiffe://agentcloud.local/agent/bot/session/s1")
	svid, err := ca.IssueX509SVID(id)
	if err != nil {
		t.Fatal(err)
	}
	leaf := svid.Certificates[0]
	if got := leaf.NotAfter.Sub(clk.Now()); got != DefaultX509TTL {
		t.Errorf("ttl = %v", got)
	}
	got, _, err := x509svid.Verify(svid.Certificates, ca.X509Bundle(), x509svid.WithTime(clk.Now()))
	if err != nil || got != id {
		t.Fatalf("verify = %v, %v", got, err)
	}
	// Marshal/parse round trip through go-spiffe.
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x509svid.Parse(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueX509SVID(spiffeid.RequireFromString("spiffe://evil.local/user/x")); !errors.Is(err, ErrWrongTrustDomain) {
		t.Fatalf("foreign id err = %v", err)
	}
	other := newTestCA(t, "", clk)
	if _, _, err := x509svid.Verify(svid.Certificates, other.X509Bundle(), x509svid.WithTime(clk.Now())); err == nil {
		t.Fatal("verified against another CA")
	}
}

func TestRotatorHalfLife(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ca := newTestCA(t, "", clk)
	r, err := ca.NewRotator(spiffeid.RequireFromString("spiffe://agentcloud.local/node/n1"))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.GetX509SVID()
	clk.Add(DefaultX509TTL/2 - 2*time.Minute)
	if s, _ := r.GetX509SVID(); s != first {
		t.Fatal("rotated before half-life")
	}
	clk.Add(3 * time.Minute)
	s, _ := r.GetX509SVID()
	if s == first {
		t.Fatal("not rotated after half-life")
	}
	if !r.RotateAt().After(clk.Now()) {
		t.Fatal("RotateAt not in the future after rotation")
	}
}

func TestVerifyJWT(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ca := newTestCA(t, "", clk)
	forger := newTestCA(t, "", clk)            // same trust domain, different keys
	foreign := newTestCA(t, "evil.local", clk) // different trust domain
	alice := spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice")

	good, jti, err := ca.IssueJWT(alice, []string{"api"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ca.VerifyJWT(ctx, good, "api")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Principal.Kind != KindUser || tok.Principal.Name != "alice" || tok.ID != jti {
		t.Fatalf("token = %+v", tok)
	}

	forged, _, _ := forger.IssueJWT(alice, []string{"api"}, time.Minute)
	foreignTok, _, _ := foreign.IssueJWT(spiffeid.RequireFromString("spiffe://evil.local/user/alice"), []string{"api"}, time.Minute)
	parts := strings.Split(good, ".")
	// Swap in a payload from another token but keep the good signature.
	other, _, _ := ca.IssueJWT(spiffeid.RequireFromString("spiffe://agentcloud.local/admin/root"), []string{"api"}, time.Minute)
	tampered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]

	tests := []struct {
		name, token, aud string
		want             error
	}{
		{"forged", forged, "api", ErrForgedToken},
		{"tampered", tampered, "api", ErrForgedToken},
		{"wrong audience", good, "other", ErrWrongAudience},
		{"wrong trust domain", foreignTok, "api", ErrWrongTrustDomain},
		{"garbage", "not.a.jwt", "api", ErrMalformedToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.VerifyJWT(ctx, tc.token, tc.aud); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	if err := ca.Revoker().Revoke(ctx, jti, tok.Expiry); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyJWT(ctx, good, "api"); !errors.Is(err, ErrRevokedToken) {
		t.Fatalf("revoked err = %v", err)
	}
	fresh, _, _ := ca.IssueJWT(alice, []string{"api"}, time.Minute)
	clk.Add(2 * time.Minute)
	if _, err := ca.VerifyJWT(ctx, fresh, "api"); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("expired err = %v", err)
	}
	// TTL above the configured maximum is capped.
	long, _, _ := ca.IssueJWT(alice, []string{"api"}, 24*time.Hour)
	lt, err := ca.VerifyJWT(ctx, long, "api")
	if err != nil || lt.Expiry.Sub(clk.Now()) > DefaultJWTTTL {
		t.Fatalf("long token = %+v, %v", lt, err)
	}
}

func TestJWKS(t *testing.T) {
	ca := newTestCA(t, "", nil)
	b, err := ca.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwtbundle.Parse(ca.TrustDomain(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Equal(ca.JWTBundle()) {
		t.Fatal("JWKS round trip differs")
	}
	// A go-spiffe verifier using the published bundle accepts our tokens.
	tok, _, _ := ca.IssueJWT(spiffeid.RequireFromString("spiffe://agentcloud.local/agent/a"), []string{"x"}, 0)
	if _, err := jwtsvidParse(tok, parsed); err != nil {
		t.Fatal(err)
	}
}

func TestAuthenticate(t *testing.T) {
	ca := newTestCA(t, "", nil)
	node, err := ca.NewRotator(spiffeid.RequireFromString("spiffe://agentcloud.local/node/n1"))
	if err != nil {
		t.Fatal(err)
	}
	auth := &Authenticator{CA: ca, Audience: "agentcloud"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := auth.Authenticate(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, p.String())
	}))
	// httptest.StartTLS would install its own certificate; serve TLS by hand.
	srv.Listener = tls.NewListener(srv.Listener, ca.ServerTLSConfig(node))
	srv.Start()
	srv.URL = strings.Replace(srv.URL, "http://", "https://", 1)
	defer srv.Close()

	get := func(cfg *tls.Config, bearer string) (int, string) {
		t.Helper()
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	agent, _ := ca.NewRotator(spiffeid.RequireFromString("spiffe://agentcloud.local/agent/bot"))
	if code, body := get(ca.ClientTLSConfig(agent, spiffeid.RequireFromString("spiffe://agentcloud.local/node/n1")), ""); code != 200 || body != "spiffe://agentcloud.local/agent/bot" {
		t.Fatalf("mTLS: %d %s", code, body)
	}
	// Server-auth only TLS + bearer.
	plain := ca.ClientTLSConfig(agent, spiffeid.ID{})
	plain.GetClientCertificate = nil
	tok, _, _ := ca.IssueJWT(spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice"), []string{"agentcloud"}, 0)
	if code, body := get(plain, tok); code != 200 || body != "spiffe://agentcloud.local/user/alice" {
		t.Fatalf("bearer: %d %s", code, body)
	}
	if code, _ := get(plain, ""); code != 401 {
		t.Fatalf("anonymous: %d", code)
	}
	wrongAud, _, _ := ca.IssueJWT(spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice"), []string{"other"}, 0)
	if code, body := get(plain, wrongAud); code != 401 || !strings.Contains(body, "audience") {
		t.Fatalf("wrong audience: %d %s", code, body)
	}
	// A client cert from another CA fails the handshake.
	other := newTestCA(t, "", nil)
	evil, _ := other.NewRotator(spiffeid.RequireFromString("spiffe://agentcloud.local/admin/root"))
	cfg := ca.ClientTLSConfig(evil, spiffeid.ID{})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	if resp, err := c.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("foreign client certificate accepted")
	}
}

func TestSuppliedEd25519Root(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ed root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	ca, err := NewCA(Config{}, root, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://agentcloud.local/sandbox/x1")
	svid, err := ca.IssueX509SVID(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, ca.X509Bundle()); err != nil {
		t.Fatal(err)
	}
	tok, _, err := ca.IssueJWT(id, []string{"a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ca.VerifyJWT(context.Background(), tok, "a"); err != nil || got.Principal.Kind != KindSandbox {
		t.Fatalf("verify = %+v, %v", got, err)
	}
}

func FuzzParsePrincipal(f *testing.F) {
	for _, s := range []string{
		"spiffe://agentcloud.local/user/alice", "spiffe://agentcloud.local/agent/bot/session/s1",
		"spiffe://agentcloud.local/agent//session/", "spiffe://other/x", "spiffe://agentcloud.local/%2e%2e/x", "",
	} {
		f.Add(s)
	}
	td := spiffeid.RequireTrustDomainFromString(DefaultTrustDomain)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrincipal(td, s)
		if err != nil {
			return
		}
		if p.Name == "" || p.ID.String() != s {
			t.Fatalf("accepted %q as %+v", s, p)
		}
		id, err := NewID(td, p.Kind, map[bool]string{true: p.Agent + "/" + p.Name, false: p.Name}[p.Kind == KindSession])
		if err != nil || id != p.ID {
			t.Fatalf("round trip %q: %v %v", s, id, err)
		}
	})
}

// FuzzVerifyJWT feeds VerifyJWT arbitrary tokens, and mutations of a valid
// one: it never panics, and accepts only the exact token the CA issued.
func FuzzVerifyJWT(f *testing.F) {
	ca := newFuzzCA(f)
	id := spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice")
	valid, _, err := ca.IssueJWT(id, []string{"agentcloud"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJzcGlmZmU6Ly9hZ2VudGNsb3VkLmxvY2FsL2FkbWluL2FkbWluIn0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := ca.VerifyJWT(context.Background(), tok, "agentcloud")
		if err != nil {
			return
		}
		if tok != valid {
			t.Fatalf("accepted a token the CA did not issue: %q as %+v", tok, got)
		}
		if got.Principal.ID != id {
			t.Fatalf("valid token verified as %+v", got)
		}
	})
}

func newFuzzCA(f *testing.F) *CA {
	f.Helper()
	ca, err := LoadOrCreateCA(Config{TrustDomain: DefaultTrustDomain}, f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	return ca
}
