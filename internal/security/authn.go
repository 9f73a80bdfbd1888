package security

import (
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// Authenticate establishes who sent r: the bootstrap admin token, an mTLS
// client SVID, or a bearer JWT-SVID for the API audience. Failures are
// audited and answered with an unauthenticated problem that says what to
// do.
func (s *Security) Authenticate(r *http.Request) (Principal, error) {
	noCert := r.TLS == nil || len(r.TLS.PeerCertificates) == 0
	if tok := bearer(r); noCert && strings.HasPrefix(tok, auth.TokenPrefix) && s.bootstrap != nil {
		if s.bootstrap.Valid(tok) {
			return s.admin, nil
		}
		return Principal{}, s.authFailed(r, "invalid bootstrap admin token", nil)
	}
	p, err := s.idauth.Authenticate(r)
	if err != nil {
		return Principal{}, s.authFailed(r, authHint(err), err)
	}
	return Principal{ID: p.ID.String(), Kind: string(p.Kind)}, nil
}

// Credential is what an authenticated request presented: a bearer token
// or a client certificate. Token issuance reads it to bound what a caller
// may mint.
type Credential struct {
	// Bearer is the Authorization bearer token, "" with a client
	// certificate.
	Bearer string
	// Cert is the client certificate's leaf, if one was presented.
	Cert *x509.Certificate
}

// CredentialOf returns the credential r carries.
func CredentialOf(r *http.Request) Credential {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return Credential{Cert: r.TLS.PeerCertificates[0]}
	}
	return Credential{Bearer: bearer(r)}
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// authHint turns a verification error into advice.
func authHint(err error) string {
	switch {
	case errors.Is(err, identity.ErrUnauthenticated):
		return "missing credentials: send Authorization: Bearer <token> (agentcloud token create; a local daemon's admin token is in <data>/admin.token) or a client certificate"
	case errors.Is(err, identity.ErrExpiredToken):
		return "token expired: create a new one with agentcloud token create"
	case errors.Is(err, identity.ErrNotYetValid):
		return "token not yet valid: check the clocks"
	case errors.Is(err, identity.ErrRevokedToken):
		return "token was revoked"
	case errors.Is(err, identity.ErrWrongAudience):
		return "token is not for this API: its audience must include \"" + APIAudience + "\""
	case errors.Is(err, identity.ErrWrongTrustDomain):
		return "credential is from another trust domain"
	case errors.Is(err, identity.ErrForgedToken):
		return "token signature is not valid for this platform's CA"
	case errors.Is(err, identity.ErrMalformedToken):
		return "malformed token"
	}
	return "credentials not accepted"
}

// Bounds of the fields of a failed authentication's audit record (and of
// the error quoted back to the caller): whatever the request carried is
// clipped and escaped (audit.Clip).
const (
	maxAuditSub   = 128
	maxAuditPath  = 256
	maxAuditError = 512
)

// authFailed audits a failed authentication, unless its remote address is
// over its budget this minute (then it only counts towards the address's
// summary record), and returns the 401 problem.
func (s *Security) authFailed(r *http.Request, hint string, err error) error {
	source := r.RemoteAddr
	if host, _, serr := net.SplitHostPort(source); serr == nil {
		source = host
	}
	source = audit.Clip(source, 64)
	record, sum := s.authLimit.Allow(source, s.now())
	if sum != nil {
		s.recordAuthSummary(r.Context(), *sum)
	}
	var msg string
	if err != nil {
		msg = audit.Clip(err.Error(), maxAuditError)
	}
	if record {
		detail := map[string]any{"remote": audit.Clip(r.RemoteAddr, 64), "path": audit.Clip(r.URL.Path, maxAuditPath)}
		if msg != "" {
			detail["error"] = msg
		}
		if sub := identity.UnverifiedSubject(bearer(r)); sub != "" {
			detail["sub"] = audit.Clip(sub, maxAuditSub) // claimed, not verified
		}
		_ = s.audit.Record(r.Context(), api.AuditEvent{Type: audit.TypeAuth, Outcome: "failure", Reason: hint, Detail: detail})
	}
	if err != nil && !errors.Is(err, identity.ErrUnauthenticated) {
		return api.Errorf(api.KindUnauthenticated, "%s (%s)", hint, msg)
	}
	return api.Errorf(api.KindUnauthenticated, "%s", hint)
}
