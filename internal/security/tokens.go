package security

// Tokens and identities issued on request (tokens.go). Administrators may
// issue any; anyone else a token for itself only (Cedar token.create on its
// own entity), expiring no later than the credential it called with. A
// token minted with a token carries its chain and never outlives it; a
// revocation refuses everything minted below the revoked token.

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
)

// IssueToken issues a JWT-SVID for in.Subject on behalf of caller, who
// authenticated with cred. Bad input is a validation problem naming the
// field; a caller asking for someone else's token is forbidden.
func (s *Security) IssueToken(ctx context.Context, caller Principal, cred Credential, in api.TokenRequest) (api.Token, error) {
	p, err := s.ParseSubject(in.Subject)
	if err != nil {
		return api.Token{}, api.FieldErrorf(api.KindValidation, "subject", "%v", err)
	}
	ttl := defaultTokenTTL
	if in.TTL != "" {
		if ttl, err = time.ParseDuration(in.TTL); err != nil || ttl <= 0 || ttl > MaxTokenTTL {
			return api.Token{}, api.FieldErrorf(api.KindValidation, "ttl", "ttl %q: want a duration from 1s to %s", in.TTL, MaxTokenTTL)
		}
	}
	parent, hasParent := s.callerToken(cred)
	var chain []string
	if hasParent {
		if chain, err = parent.Lineage(); err != nil {
			return api.Token{}, api.Errorf(api.KindForbidden, "%v: mint new tokens with a token closer to the one an administrator issued", err)
		}
	}
	if ttl, err = s.mayIssue(ctx, caller, cred, p, ttl, parent, hasParent); err != nil {
		return api.Token{}, err
	}
	aud := in.Audience
	if len(aud) == 0 {
		aud = []string{APIAudience}
	}
	tok, jti, err := s.ca.IssueJWT(p.ID, aud, ttl, chain...)
	if err != nil {
		return api.Token{}, err
	}
	out := api.Token{Token: tok, ID: jti, Subject: p.ID.String(), Audience: aud, Expires: s.now().Add(ttl).UTC().Truncate(time.Second), Chain: chain}
	// Kept until the token expires, so it can be revoked by id alone, by
	// those it belongs to, for its whole life.
	if err := s.revoker.RecordIssued(ctx, identity.Issued{ID: jti, Subject: out.Subject, Minter: caller.ID,
		Expires: s.now().Add(ttl).UTC(), Chain: chain}); err != nil {
		return api.Token{}, err
	}
	detail := map[string]any{"jti": jti, "audience": aud, "expires": out.Expires}
	if len(chain) > 0 {
		detail["chain"] = chain
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeToken, Principal: caller.ID, Action: "token.create",
		Resource: out.Subject, Outcome: "issued", Detail: detail})
	return out, nil
}

// callerToken returns the JWT-SVID a request authenticated with, if it
// did (not a client certificate, not the bootstrap token).
func (s *Security) callerToken(cred Credential) (identity.Token, bool) {
	if cred.Cert != nil {
		return identity.Token{}, false
	}
	tok := cred.Bearer
	if tok == "" || strings.HasPrefix(tok, "acb_") {
		return identity.Token{}, false
	}
	t, err := s.ca.ReadJWT(tok)
	if err != nil {
		return identity.Token{}, false
	}
	return t, true
}

// mayIssue lets administrators issue any token; anyone else a token for
// themselves (Cedar token.create on their own entity, policy
// user-self-token) that expires no later than the credential they called
// with, so a token cannot be renewed past its own life by minting another.
// A token minted with a token never outlives it, administrators' too: its
// chain names that token, and a revocation is kept only until the revoked
// token's own expiry. It returns the ttl to use.
func (s *Security) mayIssue(ctx context.Context, c Principal, cred Credential, subject identity.Principal, ttl time.Duration, parent identity.Token, hasParent bool) (time.Duration, error) {
	var until time.Time
	if hasParent {
		until = parent.Expiry
	}
	if c.Kind != string(identity.KindAdmin) {
		uid := policy.PrincipalUID(subject)
		res := Resource{Type: string(uid.Type), ID: string(uid.ID)}
		if err := s.Authorize(ctx, c, "token.create", res); err != nil {
			return 0, api.Errorf(api.KindForbidden, "%s may create tokens only for itself (subject %s); administrators may create any", c.ID, c.ID)
		}
		if cred.Cert != nil {
			until = cred.Cert.NotAfter
		}
	}
	if left := until.Sub(s.now()); !until.IsZero() && left < ttl {
		if left < time.Second {
			return 0, api.Errorf(api.KindUnauthenticated, "the credential you called with is about to expire: ask an administrator for a new one")
		}
		ttl = left.Truncate(time.Second)
	}
	return ttl, nil
}

// RevokeToken revokes a token, given by value or by id, on behalf of
// caller; every token minted with it is refused from then on (its chain
// names it). Users may revoke tokens issued to them or at their request;
// administrators any.
func (s *Security) RevokeToken(ctx context.Context, c Principal, in api.RevokeRequest) error {
	var jti, subject string
	exp := in.Expires
	switch {
	case in.Token != "":
		t, err := s.ca.ReadJWT(in.Token)
		if err != nil {
			return api.FieldErrorf(api.KindValidation, "token", "cannot revoke: %v", err)
		}
		jti, exp, subject = t.ID, t.Expiry, t.Principal.ID.String()
	case in.ID != "":
		if p := api.CheckID("id", api.IDToken, in.ID); p != nil {
			return p
		}
		jti = in.ID
	default:
		return api.FieldErrorf(api.KindValidation, "id", "give the token, or its id")
	}
	rec, found, err := s.revoker.Issued(ctx, jti)
	if err != nil {
		return err
	}
	if found {
		if rec.Expires.After(exp) {
			exp = rec.Expires // keep the revocation for the token's whole life
		}
		if subject == "" {
			subject = rec.Subject
		}
	}
	if c.Kind != string(identity.KindAdmin) {
		mine := subject == c.ID || found && (rec.Subject == c.ID || rec.Minter == c.ID)
		if !mine {
			_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeToken, Principal: c.ID, Action: "token.revoke",
				Outcome: "deny", Reason: "not the caller's token", Detail: map[string]any{"jti": jti}})
			return api.Errorf(api.KindForbidden, "%s may revoke only tokens issued to it or at its request (and, with them, the tokens minted from them); administrators may revoke any", c.ID)
		}
	}
	if exp.IsZero() {
		exp = s.now().Add(MaxTokenTTL)
	}
	if err := s.revoker.Revoke(ctx, jti, exp); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeToken, Principal: c.ID, Action: "token.revoke",
		Resource: subject, Outcome: "revoked", Detail: map[string]any{"jti": jti, "until": exp.UTC()}})
	return nil
}

// IssueIdentity certifies the public key of a CSR as an X.509-SVID for
// in.SPIFFEID on behalf of caller (the route authorizes token.create).
// The CSR must prove possession of its key.
func (s *Security) IssueIdentity(ctx context.Context, caller Principal, in api.IdentityRequest) (api.Identity, error) {
	p, err := s.ParseSubject(in.SPIFFEID)
	if err != nil {
		return api.Identity{}, api.FieldErrorf(api.KindValidation, "spiffe_id", "%v", err)
	}
	blk, _ := pem.Decode([]byte(in.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return api.Identity{}, api.FieldErrorf(api.KindValidation, "csr", "want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return api.Identity{}, api.FieldErrorf(api.KindValidation, "csr", "parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return api.Identity{}, api.FieldErrorf(api.KindValidation, "csr", "signature: %v (the CSR proves possession of the key)", err)
	}
	ttl := identity.DefaultX509TTL
	if in.TTL != "" {
		if ttl, err = time.ParseDuration(in.TTL); err != nil || ttl <= 0 || ttl > MaxTokenTTL {
			return api.Identity{}, api.FieldErrorf(api.KindValidation, "ttl", "ttl %q: want a duration from 1s to %s", in.TTL, MaxTokenTTL)
		}
	}
	cert, err := s.ca.SignX509SVID(p.ID, csr.PublicKey, ttl)
	if err != nil {
		return api.Identity{}, err
	}
	out := api.Identity{SPIFFEID: p.ID.String(), Expires: cert.NotAfter.UTC(),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		Bundle:      string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Certificate().Raw}))}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeToken, Principal: caller.ID, Action: "identity.issue",
		Resource: out.SPIFFEID, Outcome: "issued", Detail: map[string]any{"expires": out.Expires}})
	return out, nil
}
