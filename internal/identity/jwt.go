package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
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
	// ErrChainTooDeep refuses to mint a token whose chain would pass
	// MaxChainDepth.
	ErrChainTooDeep = errors.New("token chain too deep")
)

// MaxChainDepth bounds a token's chain: a token minted with a token that
// was itself minted with another, and so on, names at most this many.
const MaxChainDepth = 8

// chainClaim is the private claim that holds a token's chain.
const chainClaim = "chain"

// clockSkew is the leeway allowed on exp, nbf and iat.
const clockSkew = 30 * time.Second

// Token is a verified JWT-SVID.
type Token struct {
	Principal Principal
	Audience  []string
	ID        string // the jti claim
	IssuedAt  time.Time
	Expiry    time.Time
	// Chain lists the ids of the tokens this one was minted with: the
	// token that asked for it, then that token's own chain. Revoking any
	// of them revokes this one too.
	Chain []string
}

// Lineage is the chain a token minted with t carries: t's own id, then
// t's chain. It fails with ErrChainTooDeep past MaxChainDepth.
func (t Token) Lineage() ([]string, error) {
	out := append([]string{t.ID}, t.Chain...)
	if len(out) > MaxChainDepth {
		return nil, fmt.Errorf("token %s was minted from %d tokens; at most %d may stand behind a new one: %w", t.ID, len(t.Chain), MaxChainDepth-1, ErrChainTooDeep)
	}
	return out, nil
}

// ParseChain reads the chain claim of a verified token: absent (or null)
// is an empty chain; otherwise a JSON array of at most MaxChainDepth token
// ids, each valid by api.IDRules. Anything else is ErrMalformedToken.
func ParseChain(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var chain []string
	if err := json.Unmarshal(raw, &chain); err != nil {
		return nil, fmt.Errorf("chain claim: %w: %w", ErrMalformedToken, err)
	}
	if err := checkChain(chain); err != nil {
		return nil, fmt.Errorf("chain claim: %w: %w", ErrMalformedToken, err)
	}
	if len(chain) == 0 {
		return nil, nil
	}
	return chain, nil
}

func checkChain(chain []string) error {
	if len(chain) > MaxChainDepth {
		return fmt.Errorf("%d tokens, at most %d: %w", len(chain), MaxChainDepth, ErrChainTooDeep)
	}
	for i, id := range chain {
		if !api.ValidID(api.IDToken, id) {
			return fmt.Errorf("entry %d is not a token id (%s)", i, api.IDRules[api.IDToken].Chars)
		}
	}
	return nil
}

// IssueJWT issues a JWT-SVID for id bound to audience, valid for ttl (capped
// at the configured JWT TTL; zero means the configured TTL). chain, if
// given, is the Lineage of the token the new one is minted with; it goes
// into the token, so revoking any token of it revokes this one. It returns
// the compact token and its id (jti), which is what Revoke takes.
func (ca *CA) IssueJWT(id spiffeid.ID, audience []string, ttl time.Duration, chain ...string) (token, jti string, err error) {
	if !id.MemberOf(ca.td) {
		return "", "", fmt.Errorf("issue jwt-svid %s: %w", id, ErrWrongTrustDomain)
	}
	if len(audience) == 0 {
		return "", "", fmt.Errorf("issue jwt-svid %s: audience required", id)
	}
	if err := checkChain(chain); err != nil {
		return "", "", fmt.Errorf("issue jwt-svid %s: chain: %w", id, err)
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
	b := jwt.Signed(signer).Claims(claims)
	if len(chain) > 0 {
		b = b.Claims(map[string]any{chainClaim: chain})
	}
	token, err = b.Serialize()
	if err != nil {
		return "", "", fmt.Errorf("issue jwt-svid %s: %w", id, err)
	}
	return token, jti, nil
}

// VerifyJWT verifies a JWT-SVID: signature by this CA's JWT key, subject in
// this trust domain and a known principal kind, audience containing
// audience, time window, and not revoked.
//
// What the token's bytes alone decide (its form, subject, key id and
// signature) is remembered per token for the token's lifetime
// (jwtcache.go), so a caller presenting the same token again costs a map
// lookup instead of a signature check; the key is looked up again, and the
// time window, audience and revocation are checked on every call.
func (ca *CA) VerifyJWT(ctx context.Context, token, audience string) (Token, error) {
	v, ok := ca.verified.get(token)
	if !ok {
		var err error
		if v, err = ca.verifySignedJWT(token); err != nil {
			return Token{}, err
		}
		ca.verified.put(token, v, ca.cfg.Now())
	} else if key, found := ca.jwtBundle.FindJWTAuthority(v.kid); !found || !samePublicKey(key, v.key) {
		return Token{}, fmt.Errorf("verify jwt: unknown key id %.64q: %w", v.kid, ErrForgedToken)
	}
	now := ca.cfg.Now()
	switch {
	case now.After(v.expiry.Add(clockSkew)):
		return Token{}, fmt.Errorf("verify jwt: expired at %s: %w", v.expiry.UTC(), ErrExpiredToken)
	case !v.notBefore.IsZero() && now.Add(clockSkew).Before(v.notBefore),
		!v.issuedAt.IsZero() && now.Add(clockSkew).Before(v.issuedAt):
		return Token{}, fmt.Errorf("verify jwt: %w", ErrNotYetValid)
	}
	if !slices.Contains(v.audience, audience) {
		return Token{}, fmt.Errorf("verify jwt: audience %q not in %q: %w", audience, v.audience, ErrWrongAudience)
	}
	for i, jti := range append([]string{v.id}, v.chain...) {
		revoked, err := ca.cfg.Revoker.IsRevoked(ctx, jti)
		if err != nil {
			return Token{}, fmt.Errorf("verify jwt: check revocation: %w", err)
		}
		if revoked && i == 0 {
			return Token{}, fmt.Errorf("verify jwt: jti %s: %w", jti, ErrRevokedToken)
		}
		if revoked {
			return Token{}, fmt.Errorf("verify jwt: jti %s was minted with token %s, which is revoked: %w", v.id, jti, ErrRevokedToken)
		}
	}
	return Token{Principal: v.principal, Audience: slices.Clone(v.audience), ID: v.id, IssuedAt: v.issuedAt,
		Expiry: v.expiry, Chain: slices.Clone(v.chain)}, nil
}

// verifySignedJWT checks what token's bytes alone decide: its form, a
// subject that is a principal of this trust domain, a known key id, the
// signature, the chain, and that it has an exp and a jti.
func (ca *CA) verifySignedJWT(token string) (*signedJWT, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{ca.jwtAlg})
	if err != nil {
		return nil, fmt.Errorf("verify jwt: %w: %w", ErrMalformedToken, err)
	}
	if typ, ok := tok.Headers[0].ExtraHeaders[jose.HeaderType]; ok && typ != "JWT" && typ != "JOSE" {
		return nil, fmt.Errorf("verify jwt: typ %.32q: %w", fmt.Sprint(typ), ErrMalformedToken)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, fmt.Errorf("verify jwt: %w: %w", ErrMalformedToken, err)
	}
	id, err := spiffeid.FromString(unverified.Subject)
	if err != nil {
		return nil, fmt.Errorf("verify jwt: subject %.128q: %w: %w", unverified.Subject, ErrMalformedToken, err)
	}
	if !id.MemberOf(ca.td) {
		return nil, fmt.Errorf("verify jwt: subject %s, want trust domain %s: %w", id, ca.td, ErrWrongTrustDomain)
	}
	kid := tok.Headers[0].KeyID
	key, ok := ca.jwtBundle.FindJWTAuthority(kid)
	if !ok {
		return nil, fmt.Errorf("verify jwt: unknown key id %.64q: %w", kid, ErrForgedToken)
	}
	var claims jwt.Claims
	var private struct {
		Chain json.RawMessage `json:"chain"`
	}
	if err := tok.Claims(key, &claims, &private); err != nil {
		return nil, fmt.Errorf("verify jwt: %w: %w", ErrForgedToken, err)
	}
	chain, err := ParseChain(private.Chain)
	if err != nil {
		return nil, fmt.Errorf("verify jwt: %w", err)
	}
	if claims.Expiry == nil {
		return nil, fmt.Errorf("verify jwt: no exp claim: %w", ErrMalformedToken)
	}
	if claims.ID == "" {
		return nil, fmt.Errorf("verify jwt: no jti claim: %w", ErrMalformedToken)
	}
	p, err := PrincipalFromID(ca.td, id)
	if err != nil {
		return nil, fmt.Errorf("verify jwt: %w", err)
	}
	v := &signedJWT{kid: kid, key: key, principal: p, audience: claims.Audience, id: claims.ID, expiry: claims.Expiry.Time(), chain: chain}
	if claims.IssuedAt != nil {
		v.issuedAt = claims.IssuedAt.Time()
	}
	if claims.NotBefore != nil {
		v.notBefore = claims.NotBefore.Time()
	}
	return v, nil
}

// UnverifiedSubject returns the sub claim of a JWT without verifying
// anything, or "" if there is none: for audit records of failed
// authentications only, never for a decision. Payloads over 64 KiB are not
// decoded.
func UnverifiedSubject(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 64<<10 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var c struct {
		Sub any `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil || c.Sub == nil {
		return ""
	}
	if s, ok := c.Sub.(string); ok {
		return s
	}
	return fmt.Sprint(c.Sub)
}

// ReadJWT reads a token this CA signed, whatever its audience, time window
// or revocation (to revoke a token given by value). Its signature, id,
// expiry, chain and subject must be sound.
func (ca *CA) ReadJWT(token string) (Token, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{ca.jwtAlg})
	if err != nil {
		return Token{}, fmt.Errorf("read jwt: %w: %w", ErrMalformedToken, err)
	}
	key, ok := ca.jwtBundle.FindJWTAuthority(tok.Headers[0].KeyID)
	if !ok {
		return Token{}, fmt.Errorf("read jwt: unknown key id %.64q: %w", tok.Headers[0].KeyID, ErrForgedToken)
	}
	var claims jwt.Claims
	var private struct {
		Chain json.RawMessage `json:"chain"`
	}
	if err := tok.Claims(key, &claims, &private); err != nil {
		return Token{}, fmt.Errorf("read jwt: %w: %w", ErrForgedToken, err)
	}
	if claims.Expiry == nil || claims.ID == "" {
		return Token{}, fmt.Errorf("read jwt: no exp or jti claim: %w", ErrMalformedToken)
	}
	chain, err := ParseChain(private.Chain)
	if err != nil {
		return Token{}, fmt.Errorf("read jwt: %w", err)
	}
	p, err := ParsePrincipal(ca.td, claims.Subject)
	if err != nil {
		return Token{}, fmt.Errorf("read jwt: %w", err)
	}
	t := Token{Principal: p, Audience: claims.Audience, ID: claims.ID, Expiry: claims.Expiry.Time(), Chain: chain}
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

// Revoke marks jti revoked until expiry (plus clock skew). Revoking an
// already revoked jti keeps the later of the two times.
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
	if until := expiry.Add(clockSkew); until.After(m.ids[jti]) {
		m.ids[jti] = until
	}
	return nil
}

// IsRevoked reports whether jti is revoked and its entry has not expired.
func (m *MemRevoker) IsRevoked(_ context.Context, jti string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	until, ok := m.ids[jti]
	return ok && !m.now().After(until), nil
}
