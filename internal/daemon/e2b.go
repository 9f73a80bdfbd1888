package daemon

// The E2B-compatible API (e2b.go): internal/sandbox/e2bhttp over the
// sandbox Manager, with its API keys in the store, envd access tokens
// signed with this node's key (<data>/node.key) and every call decided by
// security, as for /v1/sandboxes.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/sandbox/e2bhttp"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
	"github.com/agentcloud/agentcloud/internal/store"
)

// startE2B registers the E2B-compatible API; on a node without sandboxes
// its routes answer 503 with the reason.
func (d *Daemon) startE2B(ctx context.Context) error {
	kv, err := d.store.KV(ctx, "e2b_keys", store.KVOptions{Description: "E2B API keys by SHA-256"})
	if err != nil {
		return fmt.Errorf("e2b keys: %w", err)
	}
	key, err := d.nodeKey()
	if err != nil {
		return err
	}
	cfg := e2bhttp.Config{Keys: kv, NodeKey: key, Authorizer: securityhttp.Auth{Sec: d.sec},
		Logger: d.log.With("component", "e2b"), Unavailable: errors.New("sandboxes are not enabled on this node")}
	if parts := d.sandboxes; parts != nil && parts.manager != nil {
		cfg.Manager, cfg.Tiers = parts.manager, parts.tiers
		cfg.BeforeCreate, cfg.Visible = d.sandboxAccess(parts)
	}
	if d.e2b, err = e2bhttp.New(cfg); err != nil {
		return err
	}
	d.e2b.Routes(d.router)
	return nil
}

func (d *Daemon) closeE2B(context.Context) error {
	if d.e2b != nil {
		d.e2b.Close()
		d.e2b = nil
	}
	return nil
}

// nodeKey is this node's HMAC key for what it signs for itself (envd
// access tokens, public port URLs): <data>/node.key, 32 random bytes
// (0600), made on first use.
func (d *Daemon) nodeKey() ([]byte, error) {
	path := filepath.Join(d.cfg.Data, "node.key")
	b, err := os.ReadFile(path)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("e2b node key: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("e2b node key: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("e2b node key: %w", err)
	}
	return b, nil
}

// e2bIdentifier lets the front door schedule E2B API calls as the
// principal of their API key or envd access token, not as anonymous
// traffic. The identity's method is one the router does not trust
// (verifiedAuth), so these credentials open no other route.
type e2bIdentifier struct {
	next gatewayIdentifier
	e2b  *e2bhttp.Handler
}

const methodE2BKey gateway.Method = "e2b-key"

func (i e2bIdentifier) Identify(r *http.Request) (gateway.Identity, error) {
	if i.e2b != nil && r.Header.Get("Authorization") == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		if p, ok, err := i.e2b.Identify(r); ok {
			if err != nil {
				return gateway.Identity{}, err
			}
			return gateway.Identity{Kind: gateway.Kind(p.Kind), ID: p.ID, Method: methodE2BKey}, nil
		}
	}
	return i.next.Identify(r)
}
