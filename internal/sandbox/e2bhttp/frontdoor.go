package e2bhttp

import (
	"net/http"

	"github.com/agentcloud/agentcloud/internal/gateway"
)

// MethodKey is the front door's identity method of an E2B API key or envd
// access token. The router does not trust it (securityhttp.VerifiedAuth
// takes mTLS, JWT-SVIDs and the admin token only), so these credentials
// open no route but the E2B API's, which checks them itself.
const MethodKey gateway.Method = "e2b-key"

// Identifier lets the front door schedule E2B API calls as the principal
// of their API key or envd access token instead of as anonymous traffic;
// every other request goes to Next.
type Identifier struct {
	Next    gateway.Identifier
	Handler *Handler
}

// Identify implements gateway.Identifier.
func (i Identifier) Identify(r *http.Request) (gateway.Identity, error) {
	if i.Handler != nil && r.Header.Get("Authorization") == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		if p, ok, err := i.Handler.Identify(r); ok {
			if err != nil {
				return gateway.Identity{}, err
			}
			return gateway.Identity{Kind: gateway.Kind(p.Kind), ID: p.ID, Method: MethodKey}, nil
		}
	}
	return i.Next.Identify(r)
}
