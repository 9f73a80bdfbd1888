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
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPOverMTLS: an MCP client authenticated by its client SVID alone
// (no bearer token) lists and calls tools as that user; the metadata
// names the https resource.
func TestMCPOverMTLS(t *testing.T) {
	cfg := config.Default()
	cfg.TLS = true
	d, _ := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
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
	mtls := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{cert}}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "mtls", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: mtls, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("connect with a client certificate: %v", err)
	}
	defer cs.Close()
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"}); err != nil || r.IsError {
		t.Fatalf("ping over mTLS: %v %+v", err, r)
	}
	// Carol is a user: the state of a session she does not own is refused.
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "state_get", Arguments: map[string]any{"agent": "x", "session": "y", "key": "k"}})
	wantToolError(t, "carol's state_get", r, err, "forbidden")
	resp, err = mtls.Get(base + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct{ Resource string }
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta.Resource != base+"/mcp" {
		t.Fatalf("metadata resource %q", meta.Resource)
	}
}

type bearerTransport2 struct {
	token string
	rt    http.RoundTripper
}

func (b bearerTransport2) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

// TestToolRateLimitsAndBodyCap: the configured per-caller bucket refuses
// the call after the burst (REST: 429 with Retry-After; MCP: a tool error),
// and an /mcp body far over the arguments cap is a JSON-RPC error.
func TestToolRateLimitsAndBodyCap(t *testing.T) {
	cfg := config.Default()
	cfg.ToolCallsPerSecond, cfg.ToolCallBurst = 0.01, 2
	d, c := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	for i := range 2 {
		if _, err := c.CallTool(ctx, "ping", nil); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	_, err := c.CallTool(ctx, "ping", nil)
	wantKind(t, "REST call past the burst", err, api.KindRateLimited, "retry in")
	cs := mcpConnect(t, d.Addr(), adminToken(t, d.DataDir()))
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"})
	wantToolError(t, "MCP call past the burst", r, err, "rate_limited")

	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","arguments":{"x":"` + strings.Repeat("a", 400<<10) + `"}}}`
	code, body := rawPost(t, "http://"+d.Addr()+"/mcp", adminToken(t, d.DataDir()), big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"code":-32600`) {
		t.Fatalf("oversized body: %d %.200s", code, body)
	}
}
