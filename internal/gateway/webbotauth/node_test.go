package webbotauth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
)

// TestTenantKeyIDsClass: each tenant signs with a key of its own, derived
// from the node key (the same after a restart, different per tenant and
// per node), but only once that key has been listed in the served
// directory for NodeDirectoryMaxAge; before, and for tenants beyond
// MaxTenantKeys, the node key signs. Every signature verifies with our own
// verifier against the served directory, including by a verifier that
// cached the directory before the tenant was listed.
func TestTenantKeyIDsClass(t *testing.T) {
	clk := clock.NewFake(start)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	n, err := NewNodeSigner(key, "https://node.agentcloud.test", clk)
	if err != nil {
		t.Fatal(err)
	}
	v := signerOnLoopback(t, n, clk)
	ctx := context.Background()
	verify := func(tenant string) Result {
		t.Helper()
		r := httptest.NewRequest("GET", "https://site.example/p?"+tenant, nil)
		if err := n.Sign(tenant, r); err != nil {
			t.Fatal(err)
		}
		return v.Verify(ctx, r)
	}
	// The verifier caches the directory with the node key alone.
	if res := verify(""); res.Outcome != Verified || res.KeyID != n.NodeKeyID() {
		t.Fatalf("node: %+v", res)
	}
	tenants := []string{"spiffe://td/user/alice", "spiffe://td/user/bob", "spiffe://td/agent/x"}
	for _, tn := range tenants {
		if res := verify(tn); res.Outcome != Verified || res.KeyID != n.NodeKeyID() {
			t.Fatalf("%s before listing: %+v, want the node key", tn, res)
		}
	}
	clk.Advance(NodeDirectoryMaxAge)
	seen := map[string]bool{n.NodeKeyID(): true}
	for _, tn := range tenants {
		res := verify(tn)
		if res.Outcome != Verified || res.Signer != n.DirectoryURL() || seen[res.KeyID] {
			t.Fatalf("%s listed: %+v, want its own key", tn, res)
		}
		seen[res.KeyID] = true
		k, _ := n.TenantKey(tn)
		if res.KeyID != Thumbprint(k.Public().(ed25519.PublicKey)) {
			t.Fatalf("%s: keyid %s is not its derived key's", tn, res.KeyID)
		}
	}
	// Derivation is stable across signers of one node key, and differs
	// across node keys.
	n2, _ := NewNodeSigner(key, "https://node.agentcloud.test", clk)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	n3, _ := NewNodeSigner(other, "https://node.agentcloud.test", clk)
	a1, _ := n.TenantKey(tenants[0])
	a2, _ := n2.TenantKey(tenants[0])
	a3, _ := n3.TenantKey(tenants[0])
	if !a1.Equal(a2) || a1.Equal(a3) {
		t.Fatal("tenant keys are not derived from the node key alone")
	}
	// Tenants beyond the cap sign as the node; a huge tenant name is refused.
	for i := len(tenants); i < MaxTenantKeys; i++ {
		if _, err := n.KeyID("spiffe://td/user/u" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(NodeDirectoryMaxAge)
	if res := verify("spiffe://td/user/one-too-many"); res.Outcome != Verified || res.KeyID != n.NodeKeyID() {
		t.Fatalf("beyond the cap: %+v, want the node key", res)
	}
	if res := verify(tenants[1]); res.Outcome != Verified || res.KeyID == n.NodeKeyID() {
		t.Fatalf("a listed tenant after the cap: %+v", res)
	}
	w := httptest.NewRecorder()
	n.ServeHTTP(w, httptest.NewRequest("GET", "https://node.agentcloud.test"+WellKnownPath, nil))
	keys, err := ParseDirectory(w.Body.Bytes(), 64)
	if err != nil || len(keys) != 1+MaxTenantKeys {
		t.Fatalf("directory: %d keys, %v", len(keys), err)
	}
	if _, err := n.KeyID(strings.Repeat("x", maxTenantBytes+1)); err == nil {
		t.Fatal("an oversized tenant name was accepted")
	}
	if got := w.Header().Get("Cache-Control"); got != "max-age=300" {
		t.Fatalf("Cache-Control %q", got)
	}
}

// TestNodeKeyFileClass: the node key is created once (0600) and read back
// the same; a file that is not a PEM Ed25519 PKCS #8 key is an error
// naming the file, never replaced.
func TestNodeKeyFileClass(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "keys", "web-bot-auth.key")
	k1, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("read back: %v", err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", fi.Mode(), err)
	}
	for name, body := range map[string]string{
		"garbage": "not a key",
		"cert":    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"badder":  "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		bad := filepath.Join(dir, name)
		if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKey(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("%s: %v", name, err)
		}
		if b, _ := os.ReadFile(bad); string(b) != body {
			t.Fatalf("%s was replaced", name)
		}
	}
}

var _ http.Handler = (*NodeSigner)(nil)
