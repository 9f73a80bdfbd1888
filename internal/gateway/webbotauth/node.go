package webbotauth

// A node's outbound signer (node.go): one origin, one directory, a key per
// tenant derived from the node key.

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/gateway/clock"
)

// MaxTenantKeys is how many tenant keys a node's directory lists besides
// the node key: with it, the 32 keys a verifier reads by default
// (Config.MaxKeys). Tenants beyond it sign with the node key.
const MaxTenantKeys = 31

// NodeDirectoryMaxAge is how long a node's directory may be cached. A
// tenant's key signs only once it has been listed this long, so a site
// holding a copy fetched before the key was listed never sees a keyid its
// copy lacks; until then, the tenant's requests carry the node key's.
const NodeDirectoryMaxAge = 5 * time.Minute

// maxTenantBytes bounds a tenant name (a SPIFFE ID).
const maxTenantBytes = 2048

// NodeSigner signs outbound requests as one Web Bot Auth signer (one
// Signature-Agent origin, one directory) with a key per tenant, so a site
// can tell the platform's tenants apart and limit or trust each: tenant
// keys are derived from the node key (HKDF-SHA256 over the tenant name),
// so they survive restarts without being stored. The directory lists the
// node key and the keys of the first MaxTenantKeys tenants that signed
// since the process started. It is safe for concurrent use.
type NodeSigner struct {
	origin string
	node   *Signer
	seed   []byte
	clock  clock.Clock

	mu      sync.Mutex            // guards tenants and listed
	tenants map[string]*tenantKey // by tenant name
	listed  []*tenantKey          // in the order they were listed
}

type tenantKey struct {
	signer *Signer
	since  time.Time // listed in the directory since
}

// NewNodeSigner returns a signer for node key key whose directory is
// served at origin (an https origin). clk nil is the wall clock.
func NewNodeSigner(key ed25519.PrivateKey, origin string, clk clock.Clock) (*NodeSigner, error) {
	if clk == nil {
		clk = clock.Real()
	}
	node, err := NewSigner(key, origin, clk)
	if err != nil {
		return nil, err
	}
	return &NodeSigner{origin: origin, node: node, seed: key.Seed(), clock: clk, tenants: map[string]*tenantKey{}}, nil
}

// DirectoryURL is the signer's identifier: its directory's URL.
func (n *NodeSigner) DirectoryURL() string { return n.node.DirectoryURL() }

// NodeKeyID is the node key's keyid.
func (n *NodeSigner) NodeKeyID() string { return n.node.KeyID() }

// TenantKey derives tenant's signing key from the node key.
func (n *NodeSigner) TenantKey(tenant string) (ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, n.seed, nil, "agentcloud web-bot-auth tenant key\x00"+tenant, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("web bot auth: tenant key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// signerFor returns the signer of tenant's requests now: its own key once
// listed for NodeDirectoryMaxAge, else the node key. The first call for a
// tenant lists its key while there is room.
func (n *NodeSigner) signerFor(tenant string) (*Signer, error) {
	if tenant == "" {
		return n.node, nil
	}
	if len(tenant) > maxTenantBytes {
		return nil, fmt.Errorf("web bot auth: tenant name of %d bytes (at most %d)", len(tenant), maxTenantBytes)
	}
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	tk := n.tenants[tenant]
	if tk == nil {
		if len(n.listed) >= MaxTenantKeys {
			return n.node, nil
		}
		key, err := n.TenantKey(tenant)
		if err != nil {
			return nil, err
		}
		s, err := NewSigner(key, n.origin, n.clock)
		if err != nil {
			return nil, err
		}
		tk = &tenantKey{signer: s, since: now}
		n.tenants[tenant] = tk
		n.listed = append(n.listed, tk)
	}
	if now.Sub(tk.since) < NodeDirectoryMaxAge {
		return n.node, nil
	}
	return tk.signer, nil
}

// KeyID is the keyid tenant's requests are signed with now ("" is the
// node itself).
func (n *NodeSigner) KeyID(tenant string) (string, error) {
	s, err := n.signerFor(tenant)
	if err != nil {
		return "", err
	}
	return s.KeyID(), nil
}

// Sign signs r for tenant ("" signs as the node), as Signer.Sign does.
func (n *NodeSigner) Sign(tenant string, r *http.Request) error {
	s, err := n.signerFor(tenant)
	if err != nil {
		return err
	}
	return s.Sign(r)
}

// ServeHTTP serves the directory: the node key and every listed tenant
// key, each with its possession proof.
func (n *NodeSigner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	keys := make([]ed25519.PrivateKey, 0, 1+len(n.listed))
	keys = append(keys, n.node.key)
	for _, tk := range n.listed {
		keys = append(keys, tk.signer.key)
	}
	n.mu.Unlock()
	serveDirectory(w, r, keys, NodeDirectoryMaxAge, n.clock.Now())
}

// LoadOrCreateKey reads the node's Ed25519 signing key from path (PEM,
// PKCS #8), creating it (0600) when absent.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	b, err := atomicfile.LoadOrCreate(path, func() ([]byte, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	})
	if err != nil {
		return nil, fmt.Errorf("web bot auth key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("web bot auth key %s: not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("web bot auth key %s: %w", path, err)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("web bot auth key " + path + ": not an Ed25519 key")
	}
	return ed, nil
}
