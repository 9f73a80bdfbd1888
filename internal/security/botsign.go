package security

// Outbound Web Bot Auth (botsign.go): the node's signing key, the egress
// hook that signs agents' requests with their tenant's key, and the key
// directory the node serves.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
)

// BotKeyFile is the node's Web Bot Auth signing key in the data dir
// (PEM PKCS #8 Ed25519, 0600), next to secrets.key.
const BotKeyFile = "web-bot-auth.key"

// loadBotSigner loads (or creates) the node key and makes the outbound
// signer for origin; no origin, no signer.
func loadBotSigner(dataDir, origin string) (*webbotauth.NodeSigner, error) {
	if origin == "" {
		return nil, nil
	}
	key, err := webbotauth.LoadOrCreateKey(filepath.Join(dataDir, BotKeyFile))
	if err != nil {
		return nil, err
	}
	n, err := webbotauth.NewNodeSigner(key, origin, nil)
	if err != nil {
		return nil, fmt.Errorf("egress_signature_agent: %w", err)
	}
	return n, nil
}

// SignOutbound is the egress proxy's Sign hook: with
// egress_signature_agent set, the requests agents send out (sessions'
// fetches and tool calls, sandboxes' traffic) are signed with Web Bot
// Auth as their tenant (the agent's or sandbox's owner; the node key when
// none is known). The platform's own requests (model providers, tool
// registries, key directories) go unsigned: they are not an agent's.
func (s *Security) SignOutbound(_ context.Context, c egress.Caller, out *http.Request) error {
	if s.bots == nil {
		return nil
	}
	switch c.Purpose {
	case egress.PurposeSession, egress.PurposeSandbox:
		return s.bots.Sign(c.Owner, out)
	}
	return nil
}

// KeyDirectory serves the node's Web Bot Auth key directory, or answers
// 404 when outbound signing is off. ok says which.
func (s *Security) KeyDirectory() (h http.Handler, ok bool) {
	if s.bots == nil {
		return nil, false
	}
	return s.bots, true
}
