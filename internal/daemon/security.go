package daemon

// Security wiring (security*.go, egress.go).
//
// Authentication: the bootstrap token in <data>/admin.token authenticates as
// spiffe://TD/admin/admin; everyone else presents a JWT-SVID for audience
// "agentcloud" (agentcloud token create) or, with --tls, a client X.509-SVID
// (agentcloud identity issue). Failures are audited with bounded, escaped
// fields, at most a configured number per remote address and minute; the
// rest are counted into one summary record per address and minute.
//
// Authorization: every route names an Action. Schema actions go to Cedar
// with entities built per request: the caller (a session carries its agent
// and labels) and the resource with its owner from the records (agent
// records, secret owner records, approvals; other types through
// RegisterResourceOwner). A missing resource is the caller's own only for
// creating actions. A few actions outside the schema (status, whoami,
// listings that filter per item) are open to any authenticated caller.
// Denials and non-read allows are audited.
//
// Egress: the manifest's egress list AND Cedar egress.fetch. The agent's
// hosts grant is the request host when the manifest allows it; the
// session's declared allowlist (allowHosts, which the lethal-trifecta
// forbid exempts) is the platform's trusted hosts. An approvable denial
// consumes an approved approval for the same (caller, action, host) once, or
// records a pending one whose id the agent sees in the fetch error.
//
// Labels: using a secret raises a session's confidentiality to secret;
// reading a response from a host not marked trusted lowers its integrity.
// Labels are stored in the security bucket, change under compare-and-set,
// only move one way, and are reset by an administrator only. They follow
// calls between sessions and model calls (security_flow.go).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// APIAudience is the JWT-SVID audience the API accepts.
const APIAudience = "agentcloud"

// Token lifetimes.
const (
	defaultTokenTTL = time.Hour
	maxTokenTTL     = 24 * time.Hour
	pruneInterval   = time.Hour
)

// security holds the daemon's identity, authorization, secrets, audit and
// approval parts. It is built by newSecurity after the store opens; the
// session manager is attached once it exists.
type security struct {
	log       *slog.Logger
	td        spiffeid.TrustDomain
	ca        *identity.CA
	revoker   *identity.KVRevoker
	idauth    *identity.Authenticator
	bootstrap *auth.Bootstrap
	admin     httpapi.Principal // what the bootstrap token authenticates as
	engine    *policy.Engine
	kv        store.KV // policies, trusted hosts, secret owners, labels
	secrets   *secrets.Manager
	audit     *audit.Log
	approvals *approval.Store
	labels    *labelStore
	authLimit *audit.Limiter // failed authentications audited one by one
	rate      rateCounter
	trusted   atomic.Pointer[trustedCache]
	private   atomic.Pointer[trustedCache] // private-host patterns
	now       func() time.Time

	// sessions is set by attach; nil until the session manager exists.
	sessions *session.Manager
	// owners look up the owner of a resource type other than the built-in
	// ones (e.g. "Sandbox"); see Daemon.RegisterResourceOwner.
	omu    sync.RWMutex // protects owners
	owners map[string]OwnerFunc
	// sandboxLookup finds a live sandbox's record; set by startSandboxes.
	sandboxLookup func(id string) (sandboxRecord, bool)

	svids *sessionSVIDs // session identities (session_identity.go)

	stop chan struct{} // closed by close; stops the revocation pruner
	wg   sync.WaitGroup
}

// OwnerFunc returns the SPIFFE ID of the owner of a resource and whether it
// exists. It lets new resource kinds (sandboxes) join authorization.
type OwnerFunc func(ctx context.Context, id, parent string) (owner string, exists bool, err error)

var (
	_ httpapi.Authenticator = (*security)(nil)
	_ httpapi.Authorizer    = (*security)(nil)
)

// newSecurity builds the CA, revoker, policy engine (with the stored user
// policies), secrets manager, audit stream and approvals.
func newSecurity(ctx context.Context, cfg securityConfig) (*security, error) {
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", cfg.TrustDomain, err)
	}
	s := &security{log: cfg.Log, td: td, bootstrap: cfg.Bootstrap, now: time.Now,
		owners: map[string]OwnerFunc{}}
	s.admin = httpapi.Principal{ID: spiffeid.RequireFromSegments(td, "admin", "admin").String(), Kind: string(identity.KindAdmin)}
	if s.kv, err = cfg.Store.KV(ctx, "security", store.KVOptions{Description: "policies, trusted hosts, secret owners, session labels"}); err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	revKV, err := cfg.Store.KV(ctx, "revocations", store.KVOptions{Description: "revoked token ids"})
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	s.revoker = identity.NewKVRevoker(revKV, nil)
	if err := ensureJWTKey(cfg.CADir); err != nil {
		return nil, err
	}
	s.ca, err = identity.LoadOrCreateCA(identity.Config{TrustDomain: td.Name(), JWTTTL: maxTokenTTL,
		Logger: cfg.Log, Revoker: s.revoker}, cfg.CADir)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	s.idauth = &identity.Authenticator{CA: s.ca, Audience: APIAudience}
	if s.engine, err = policy.New(policy.Config{Logger: cfg.Log}); err != nil {
		return nil, err
	}
	if s.audit, err = audit.Open(ctx, cfg.Store, cfg.Log, cfg.AuditRetention); err != nil {
		return nil, err
	}
	perSource := max(cfg.AuthFailuresPerMinute, 1)
	s.authLimit = audit.NewLimiter(perSource, authFailureGlobalFactor*perSource, authFailureSources, time.Minute)
	apKV, err := cfg.Store.KV(ctx, "approvals", store.KVOptions{Description: "pending and resolved approvals"})
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	s.approvals = approval.New(apKV, nil)
	secKV, err := cfg.Store.KV(ctx, "secrets", store.KVOptions{Description: "AES-256-GCM sealed secrets"})
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	key, err := secrets.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secrets.key"))
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if s.secrets, err = secrets.NewManager(key, secrets.NewKVStore(secKV)); err != nil {
		return nil, err
	}
	s.labels = &labelStore{kv: s.kv, audit: s.audit, now: s.now}
	if err := s.loadPolicies(ctx); err != nil {
		return nil, err
	}
	s.stop = make(chan struct{})
	// Token checks read revocations from memory, kept current by a watch
	// that ends with the daemon (then they read the store).
	watchCtx, stopWatch := context.WithCancel(context.Background())
	if err := s.revoker.Watch(watchCtx); err != nil {
		stopWatch()
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-s.stop
		stopWatch()
	}()
	s.wg.Add(1)
	go s.pruneRevocations()
	s.wg.Add(1)
	go s.summariseAuthFailures()
	return s, nil
}

// Bounds of the failed-authentication audit: over all sources at most this
// many times the per-source budget per minute, and at most this many
// sources tracked one by one (the rest share one summary).
const (
	authFailureGlobalFactor = 60
	authFailureSources      = 4096
)

// summariseAuthFailures writes, each minute, one record per remote address
// whose failed authentications were held back in the minute that ended.
func (s *security) summariseAuthFailures() {
	defer s.wg.Done()
	t := time.NewTicker(s.authLimit.Window())
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.sweepAuthFailures(context.Background(), s.now().Add(s.authLimit.Window()))
			return
		case <-t.C:
			s.sweepAuthFailures(context.Background(), s.now())
		}
	}
}

func (s *security) sweepAuthFailures(ctx context.Context, now time.Time) {
	for _, sum := range s.authLimit.Sweep(now) {
		s.recordAuthSummary(ctx, sum)
	}
}

func (s *security) recordAuthSummary(ctx context.Context, sum audit.Summary) {
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeAuth, Outcome: "suppressed",
		Reason: fmt.Sprintf("%d more failed authentications from %s were not recorded one by one", sum.Suppressed, sum.Key),
		Detail: map[string]any{"remote": sum.Key, "suppressed": sum.Suppressed, "from": sum.From.UTC(), "to": sum.To.UTC()}})
}

// pruneRevocations drops revocations of tokens that have expired anyway.
func (s *security) pruneRevocations() {
	defer s.wg.Done()
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if n, err := s.revoker.Prune(ctx); err != nil {
				s.log.Warn("prune revocations", "err", err)
			} else if n > 0 {
				s.log.Info("pruned revocations", "count", n)
			}
			cancel()
		}
	}
}

type securityConfig struct {
	TrustDomain string
	CADir       string
	DataDir     string
	Store       *store.Store
	Bootstrap   *auth.Bootstrap
	Log         *slog.Logger
	// AuditRetention bounds the audit stream; AuthFailuresPerMinute is
	// how many failed authentications per remote address and minute are
	// audited one by one.
	AuditRetention        audit.Retention
	AuthFailuresPerMinute int
}

// ensureJWTKey creates the JWT signing key next to a supplied root that
// came without one, so a root can be supplied as just ca.crt and ca.key.
func ensureJWTKey(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err != nil {
		return nil // the CA creates everything
	}
	path := filepath.Join(dir, "jwt.key")
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate jwt key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("marshal jwt key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("write jwt key: %w", err)
	}
	return nil
}

// attach connects the session manager (for owners and manifests) and gives
// its sessions their identities.
func (s *security) attach(m *session.Manager) {
	s.sessions = m
	s.startSessionIdentities(m)
}

// RegisterResourceOwner makes resources of typ (e.g. "Sandbox") subject to
// ownership in authorization: fn reports each one's owner (the SPIFFE ID of
// the principal that created it). Call after Start, before serving them.
func (d *Daemon) RegisterResourceOwner(typ string, fn OwnerFunc) {
	s := d.sec
	s.omu.Lock()
	defer s.omu.Unlock()
	s.owners[typ] = fn
}

// Authenticate implements httpapi.Authenticator: the bootstrap admin token,
// an mTLS client SVID, or a bearer JWT-SVID for the API audience. Failures
// are audited.
func (s *security) Authenticate(r *http.Request) (httpapi.Principal, error) {
	noCert := r.TLS == nil || len(r.TLS.PeerCertificates) == 0
	if tok := bearer(r); noCert && strings.HasPrefix(tok, "acb_") && s.bootstrap != nil {
		if _, err := s.bootstrap.Authenticate(r); err == nil {
			return s.admin, nil
		}
		return httpapi.Principal{}, s.authFailed(r, "invalid bootstrap admin token", nil)
	}
	p, err := s.idauth.Authenticate(r)
	if err != nil {
		return httpapi.Principal{}, s.authFailed(r, authHint(err), err)
	}
	return toHTTPPrincipal(p), nil
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

func toHTTPPrincipal(p identity.Principal) httpapi.Principal {
	return httpapi.Principal{ID: p.ID.String(), Kind: string(p.Kind)}
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
func (s *security) authFailed(r *http.Request, hint string, err error) error {
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

// principalOf parses an authenticated request principal back into an
// identity.Principal.
func (s *security) principalOf(p httpapi.Principal) (identity.Principal, error) {
	ip, err := identity.ParsePrincipal(s.td, p.ID)
	if err != nil {
		return identity.Principal{}, api.Errorf(api.KindForbidden, "principal %q is not an identity of trust domain %s", p.ID, s.td.Name())
	}
	return ip, nil
}

// parseSubject reads "user:alice", "session:bot/s1", "admin" or a SPIFFE ID.
func (s *security) parseSubject(sub string) (identity.Principal, error) {
	if strings.HasPrefix(sub, "spiffe://") {
		return identity.ParsePrincipal(s.td, sub)
	}
	if sub == "admin" {
		sub = "admin:admin"
	}
	kind, name, ok := strings.Cut(sub, ":")
	if !ok || name == "" {
		return identity.Principal{}, fmt.Errorf("subject %q: want KIND:NAME (user:alice, agent:bot, session:bot/s1, sandbox:x, node:n1) or a SPIFFE ID", sub)
	}
	id, err := identity.NewID(s.td, identity.Kind(kind), name)
	if err != nil {
		return identity.Principal{}, fmt.Errorf("subject %q: %w", sub, err)
	}
	return identity.PrincipalFromID(s.td, id)
}

// sessionSVID returns the X.509-SVID source of a session (for its upstream
// client certificate), minted at the session's activation or now. The
// private key stays in the daemon; agent code never sees it.
func (s *security) sessionSVID(id spiffeid.ID) (*identity.Rotator, error) {
	return s.svids.rotator(id)
}

// rateCounter counts requests per principal in the current minute, for the
// Cedar context.
type rateCounter struct {
	mu     sync.Mutex // protects minute and counts
	minute int64
	counts map[string]int64
}

func (c *rateCounter) hit(now time.Time, who string) int64 {
	m := now.Unix() / 60
	c.mu.Lock()
	defer c.mu.Unlock()
	if m != c.minute || c.counts == nil {
		c.minute, c.counts = m, map[string]int64{}
	}
	c.counts[who]++
	return c.counts[who]
}

// close writes the queued audit records; the store closes after it.
func (s *security) close() {
	if s.stop != nil {
		close(s.stop)
		s.wg.Wait()
	}
	s.audit.Close()
}
