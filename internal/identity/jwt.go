package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Errors returned by VerifyJWT. Each failure has its own error so callers
// can log and count them separately; ErrWrongTrustDomain is shared with
// PrincipalFromID.
var (
	ErrMalformedToken = errors.New("malformed token")
	ErrForgedToken    = errors.New("token signature not valid")
	ErrExpiredToken   = errors.New("token expired")
	ErrNotYetValid    = errors.New("token not yet valid")
	ErrWrongAudience  = errors.New("token audience mismatch")
	ErrRevokedToken   = errors.New("token revoked")
)

// clockSkew is the leeway allowed on exp, nbf and iat.
const clockSkew = 30 * time.Second

// Token is a verified JWT-SVID.
type Token struct {
	Principal Principal
	Audience  []string
	ID        string // the jti claim
	IssuedAt  time.Time
	Expiry    time.Time
}

// IssueJWT issues a JWT-SVID for id bound to audience, valid for ttl (capped
// at the configured JWT TTL; zero means the configured TTL). It returns the
// compact token and its id (jti), which is what Revoke takes.
func (ca *CA) IssueJWT(id spiffeid.ID, audience []string, ttl time.Duration) (token, jti string, err error) {
	if !id.MemberOf(ca.td) {
		return "", "", fmt.Errorf("issue jwt-svid %s: %w", id, ErrWrongTrustDomain)
	}
	if len(audience) == 0 {
		return "", "", fmt.Errorf("issue jwt-svid %s: audience required", id)
	}
	if ttl <= 0 || ttl > ca.cfg.JWTTTL {
		ttl = ca.cfg.JWTTTL
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: ca.jwtAlg, Key: ca.jwtKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), ca.jwtKID),
	)
	if err != nil {
		return "", "", fmt.Errorf("issue jwt-svid %s: %w", id, err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("issue jwt-svid %s: %w", id, err)
	}
	jti = base64.RawURLEncoding.EncodeToString(raw[:])
	now := ca.cfg.Now()
	claims := jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		IssuedAt: jwt.NewNumericDate(now),
		ID:       jti,
	}
	token, err = jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", "", fmt.Errorf("issue jwt-svid %s: %w", id, err)
	}
	return token, jti, nil
}

// VerifyJWT verifies a JWT-SVID: signature by this CA's JWT key, subject in
// this trust domain and a known principal kind, audience containing
// audience, time window, and not revoked.
func (ca *CA) VerifyJWT(ctx context.Context, token, audience string) (Token, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{ca.jwtAlg})
	if err != nil {
		return Token{}, fmt.Errorf("verify jwt: %w: %w", ErrMalformedToken, err)
	}
	if typ, ok := tok.Headers[0].ExtraHeaders[jose.HeaderType]; ok && typ != "JWT" && typ != "JOSE" {
		return Token{}, fmt.Errorf("verify jwt: typ %v: %w", typ, ErrMalformedToken)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return Token{}, fmt.Errorf("verify jwt: %w: %w", ErrMalformedToken, err)
	}
	id, err := spiffeid.FromString(unverified.Subject)
	if err != nil {
		return Token{}, fmt.Errorf("verify jwt: subject %q: %w: %w", unverified.Subject, ErrMalformedToken, err)
	}
	if !id.MemberOf(ca.td) {
		return Token{}, fmt.Errorf("verify jwt: subject %s, want trust domain %s: %w", id, ca.td, ErrWrongTrustDomain)
	}
	key, ok := ca.jwtBundle.FindJWTAuthority(tok.Headers[0].KeyID)
	if !ok {
		return Token{}, fmt.Errorf("verify jwt: unknown key id %q: %w", tok.Headers[0].KeyID, ErrForgedToken)
	}
	var claims jwt.Claims
	if err := tok.Claims(key, &claims); err != nil {
		return Token{}, fmt.Errorf("verify jwt: %w: %w", ErrForgedToken, err)
	}
	if claims.Expiry == nil {
		return Token{}, fmt.Errorf("verify jwt: no exp claim: %w", ErrMalformedToken)
	}
	if claims.ID == "" {
		return Token{}, fmt.Errorf("verify jwt: no jti claim: %w", ErrMalformedToken)
	}
	now := ca.cfg.Now()
	switch {
	case now.After(claims.Expiry.Time().Add(clockSkew)):
		return Token{}, fmt.Errorf("verify jwt: expired at %s: %w", claims.Expiry.Time().UTC(), ErrExpiredToken)
	case claims.NotBefore != nil && now.Add(clockSkew).Before(claims.NotBefore.Time()),
		claims.IssuedAt != nil && now.Add(clockSkew).Before(claims.IssuedAt.Time()):
		return Token{}, fmt.Errorf("verify jwt: %w", ErrNotYetValid)
	}
	if !slices.Contains([]string(claims.Audience), audience) {
		return Token{}, fmt.Errorf("verify jwt: audience %q not in %q: %w", audience, []string(claims.Audience), ErrWrongAudience)
	}
	revoked, err := ca.cfg.Revoker.IsRevoked(ctx, claims.ID)
	if err != nil {
		return Token{}, fmt.Errorf("verify jwt: check revocation: %w", err)
	}
	if revoked {
		return Token{}, fmt.Errorf("verify jwt: jti %s: %w", claims.ID, ErrRevokedToken)
	}
	p, err := PrincipalFromID(ca.td, id)
	if err != nil {
		return Token{}, fmt.Errorf("verify jwt: %w", err)
	}
	t := Token{Principal: p, Audience: claims.Audience, ID: claims.ID, Expiry: claims.Expiry.Time()}
	if claims.IssuedAt != nil {
		t.IssuedAt = claims.IssuedAt.Time()
	}
	return t, nil
}

// Revoker records revoked token ids. The daemon backs it with its store; an
// entry need only be kept until the token's own expiry.
type Revoker interface {
	Revoke(ctx context.Context, jti string, expiry time.Time) error
	IsRevoked(ctx context.Context, jti string) (bool, error)
}

// MemRevoker is an in-memory Revoker. Entries are dropped once the token
// they name has expired.
type MemRevoker struct {
	now func() time.Time
	mu  sync.Mutex           // protects ids
	ids map[string]time.Time // jti → token expiry
}

var _ Revoker = (*MemRevoker)(nil)

// NewMemRevoker returns an empty MemRevoker using now as its clock (nil
// means time.Now).
func NewMemRevoker(now func() time.Time) *MemRevoker {
	if now == nil {
		now = time.Now
	}
	return &MemRevoker{now: now, ids: make(map[string]time.Time)}
}

// Revoke marks jti revoked until expiry (plus clock skew).
func (m *MemRevoker) Revoke(_ context.Context, jti string, expiry time.Time) error {
	if jti == "" {
		return errors.New("revoke: empty token id")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for id, exp := range m.ids {
		if now.After(exp) {
			delete(m.ids, id)
		}
	}
	m.ids[jti] = expiry.Add(clockSkew)
	return nil
}

// IsRevoked reports whether jti was revoked.
func (m *MemRevoker) IsRevoked(_ context.Context, jti string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ids[jti]
	return ok, nil
}
