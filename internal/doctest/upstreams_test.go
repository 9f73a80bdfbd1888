package doctest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The hosts the READMEs name as stand-ins for a user's own services, and
// the credentials the READMEs store for them. The doc test serves them all
// from one HTTPS server on a random loopback address, port 443, which the
// daemon's egress proxy resolves them to (the egress_loopback_hosts
// setting, with the stand-ins' CA as egress_upstream_ca_file).
const (
	apiHost  = "api.example.com"  // a sandbox's API and the model provider
	mcpHost  = "mcp.example.com"  // an upstream MCP server
	petsHost = "pets.example.com" // examples/pets.yaml
	mapsHost = "maps.example.com" // an OpenAPI document fetched by URL

	apiKey  = "key-for-the-example-api"
	llmKey  = "sk-example"
	ghToken = "gh-example-token"
	petsKey = "pets-example-key"
	mapsKey = "maps-example-key"
)

var upstreamHosts = []string{apiHost, mcpHost, petsHost, mapsHost}

// upstreams is the loopback stand-in for the READMEs' example hosts.
type upstreams struct {
	addr   netip.Addr
	caFile string // PEM of the stand-ins' CA
	llm    *openaitest.Server

	mu   sync.Mutex // protects hits
	hits map[string]int
}

// loopbackHosts are the egress_loopback_hosts entries that send the
// stand-in names to u.
func (u *upstreams) loopbackHosts() []string {
	out := make([]string, len(upstreamHosts))
	for i, h := range upstreamHosts {
		out[i] = h + "=" + u.addr.String()
	}
	return out
}

func (u *upstreams) hit(what string) {
	u.mu.Lock()
	u.hits[what]++
	u.mu.Unlock()
}

func (u *upstreams) count(what string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[what]
}

// startUpstreams serves the stand-in hosts over HTTPS on 127.x.y.z:443.
func startUpstreams(t *testing.T) *upstreams {
	t.Helper()
	u := &upstreams{hits: map[string]int{}, llm: openaitest.New(t, "stand-in provider")}
	cert, caPEM := selfSignedFor(t, upstreamHosts...)
	u.caFile = filepath.Join(t.TempDir(), "stand-in-ca.pem")
	if err := os.WriteFile(u.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var err error
	for range 20 {
		u.addr = netip.AddrFrom4([4]byte{127, byte(1 + mrand.IntN(250)), byte(1 + mrand.IntN(250)), byte(1 + mrand.IntN(250))})
		ln, err = net.Listen("tcp", netip.AddrPortFrom(u.addr, 443).String())
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Skipf("cannot listen on a loopback address's port 443 for the stand-in hosts (needs root): %v", err)
	}
	srv := &http.Server{Handler: u.handler(t), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

func (u *upstreams) handler(t *testing.T) http.Handler {
	mcpSrv := mcp.NewServer(&mcp.Implementation{Name: "issues", Version: "1.0"}, nil)
	type searchIn struct {
		Query string `json:"query" jsonschema:"words to look for in issue titles"`
	}
	mcp.AddTool(mcpSrv, &mcp.Tool{Name: "search_issues", Description: "Search the issue tracker."},
		func(_ context.Context, _ *mcp.CallToolRequest, in searchIn) (*mcp.CallToolResult, any, error) {
			u.hit("mcp search_issues")
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "#12 " + in.Query + " on CI"}}}, nil, nil
		})
	// It stands for a remote server, so the SDK's localhost-only Host check is off.
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mcpSrv },
		&mcp.StreamableHTTPOptions{DisableLocalhostProtection: true})
	llm := u.llm.Config.Handler
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := strings.Cut(r.Host, ":")
		deny := func(what string) { http.Error(w, "wrong or missing "+what, http.StatusUnauthorized) }
		switch {
		case host == apiHost && strings.HasPrefix(r.URL.Path, "/v1/"):
			if r.Header.Get("Authorization") != "Bearer "+llmKey {
				deny("model provider key")
				return
			}
			u.hit("llm")
			llm.ServeHTTP(w, r)
		case host == apiHost:
			if r.Header.Get("Authorization") != "Bearer "+apiKey {
				deny("API key")
				return
			}
			u.hit("api")
			fmt.Fprintln(w, "hello from the example API")
		case host == mcpHost && r.URL.Path == "/mcp":
			if r.Header.Get("Authorization") != "Bearer "+ghToken {
				deny("MCP token")
				return
			}
			mcpHandler.ServeHTTP(w, r)
		case host == petsHost && strings.HasPrefix(r.URL.Path, "/v1/pets"):
			if r.Header.Get("X-Api-Key") != petsKey {
				deny("X-Api-Key")
				return
			}
			u.hit("pets")
			pets := []map[string]string{{"id": "1", "name": "Rex"}, {"id": "2", "name": "Tom"}, {"id": "3", "name": "Kit"}}
			if id := strings.TrimPrefix(r.URL.Path, "/v1/pets/"); id != r.URL.Path {
				writeJSON(w, pets[0])
				return
			}
			writeJSON(w, pets)
		case host == mapsHost && r.URL.Path == "/openapi.json":
			u.hit("maps document")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, mapsDocument)
		case host == mapsHost && r.URL.Path == "/geocode":
			if r.URL.Query().Get("key") != mapsKey {
				deny("key")
				return
			}
			u.hit("maps")
			writeJSON(w, map[string]any{"query": r.URL.Query().Get("q"), "lat": 52.52, "lon": 13.405})
		default:
			t.Logf("stand-in upstream: unexpected %s https://%s%s", r.Method, r.Host, r.URL)
			http.NotFound(w, r)
		}
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// mapsDocument is what https://maps.example.com/openapi.json serves.
const mapsDocument = `{
  "openapi": "3.1.0",
  "info": {"title": "Maps", "version": "1"},
  "servers": [{"url": "https://maps.example.com"}],
  "paths": {
    "/geocode": {
      "get": {
        "operationId": "geocode",
        "summary": "Find the coordinates of a place.",
        "parameters": [{"name": "q", "in": "query", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "coordinates"}}
      }
    }
  }
}`

// selfSignedFor returns a server certificate for names, issued by a fresh
// CA, and that CA in PEM.
func selfSignedFor(t *testing.T, names ...string) (tls.Certificate, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "doctest stand-in CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
}
