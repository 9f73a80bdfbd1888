package securityhttp

// The front door's view of security (frontdoor.go): the gateway schedules
// by a verified identity (GatewayIdentifier), and the router trusts what
// the gateway verified instead of verifying it twice (VerifiedAuth).

import (
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/security"
)

// GatewayIdentifier identifies requests with security's verification,
// without auditing (the router audits the failures it refuses).
type GatewayIdentifier struct{ Sec *security.Security }

// Identify implements the gateway's Identifier.
func (i GatewayIdentifier) Identify(r *http.Request) (gateway.Identity, error) {
	cert := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if !cert && r.Header.Get("Authorization") == "" {
		return gateway.Identity{}, nil // anonymous or Web Bot Auth
	}
	p, err := i.Sec.Identify(r)
	if err != nil {
		return gateway.Identity{}, err
	}
	id := gateway.Identity{Kind: gateway.Kind(p.Kind), ID: p.ID, Method: gateway.MethodJWT}
	switch {
	case cert:
		id.Method = gateway.MethodMTLS
	case p.Kind == string(identity.KindAdmin):
		id.Method = gateway.MethodToken
	}
	if p.Kind == string(identity.KindSession) {
		if pp, err := identity.ParsePrincipal(i.Sec.TrustDomain(), p.ID); err == nil {
			id.Agent = pp.Agent
		}
	}
	return id, nil
}

// VerifiedAuth is the router's Authenticator behind the gateway: a request
// the gateway has already identified by verified credentials
// (GatewayIdentifier) is not verified a second time; every other request
// is authenticated (and its failure audited) by security.
type VerifiedAuth struct{ Auth }

// Authenticate implements httpapi.Authenticator.
func (a VerifiedAuth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if c, ok := gateway.ClassFrom(r.Context()); ok {
		switch c.Identity.Method {
		case gateway.MethodMTLS, gateway.MethodJWT, gateway.MethodToken:
			return httpapi.Principal{ID: c.Identity.ID, Kind: string(c.Identity.Kind)}, nil
		}
	}
	return a.Auth.Authenticate(r)
}

// keyDirectoryRoute serves the node's Web Bot Auth key directory, public,
// so sites can verify what the egress proxy signed for agents (404 when
// egress_signature_agent is not set).
func keyDirectoryRoute(rt *httpapi.Router, s *security.Security) {
	rt.Handle(httpapi.Route{Method: "GET", Path: security.KeyDirectoryPath, Tag: tag, Public: true,
		Summary:        "This node's Web Bot Auth key directory (public; signed with each key; 404 unless egress_signature_agent is set).",
		RawContentType: "application/http-message-signatures-directory+json",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			h, ok := s.KeyDirectory()
			if !ok {
				return api.Errorf(api.KindNotFound, "this node signs no outbound requests: set egress_signature_agent to an https origin that serves this path")
			}
			h.ServeHTTP(w, r)
			return nil
		}})
}
