// Package securityhttp is the HTTP surface of internal/security: the
// routes of tokens, identities, policies, trusted and private hosts,
// secrets, approvals, the audit stream and session labels, and the
// adapters that let the router authenticate and authorize with a
// *security.Security (Auth) and let security find a request's principal
// (PrincipalFrom).
//
// It owns request decoding, resource extraction from paths and response
// encoding only; every decision and every record is security's. It does
// not own the routes of other parts, even where they are authorized by
// security.
package securityhttp

import (
	"context"
	"net/http"

	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/security"
)

// Auth adapts a *security.Security to the router's Authenticator and
// Authorizer (and to everything else that takes an httpapi.Authorizer).
type Auth struct{ Sec *security.Security }

var (
	_ httpapi.Authenticator = Auth{}
	_ httpapi.Authorizer    = Auth{}
)

// Authenticate implements httpapi.Authenticator.
func (a Auth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	p, err := a.Sec.Authenticate(r)
	return httpapi.Principal(p), err
}

// Authorize implements httpapi.Authorizer.
func (a Auth) Authorize(ctx context.Context, p httpapi.Principal, action string, res httpapi.Resource) error {
	return a.Sec.Authorize(ctx, security.Principal(p), action, security.Resource(res))
}

// PrincipalFrom returns the principal the router (or a tool call acting
// for its caller) put on ctx, for security.Deps.PrincipalFrom.
func PrincipalFrom(ctx context.Context) (security.Principal, bool) {
	p, ok := httpapi.PrincipalFrom(ctx)
	return security.Principal(p), ok
}

// caller is the authenticated principal of r.
func caller(r *http.Request) security.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return security.Principal(p)
}
