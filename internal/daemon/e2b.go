package daemon

// The E2B-compatible API (e2b.go): internal/sandbox/e2bhttp over the
// sandbox Manager, with its API keys in the store, envd access tokens
// signed with this node's key (<data>/node.key) and every call decided by
// security, as for /v1/sandboxes.

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/internal/sandbox/e2bhttp"
	"github.com/agentcloud/agentcloud/internal/security"
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
	key, err := security.NodeKey(d.cfg.Data)
	if err != nil {
		return err
	}
	cfg := e2bhttp.Config{Keys: kv, NodeKey: key, Authorizer: securityhttp.Auth{Sec: d.sec},
		Logger: d.log.With("component", "e2b"), Unavailable: errors.New("sandboxes are not enabled on this node")}
	if parts := d.sandboxes; parts != nil && parts.manager != nil {
		cfg.Manager, cfg.Tiers = parts.manager, parts.tiers
		cfg.BeforeCreate, cfg.Visible = securityhttp.SandboxCreate, securityhttp.Auth{Sec: d.sec}.SandboxVisible
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
