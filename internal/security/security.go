package security

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
// records, secret owner records, approvals, sandboxes; other types through
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
// calls between sessions and model calls (flow.go).

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
	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// APIAudience is the JWT-SVID audience the API accepts.
const APIAudience = "agentcloud"

// Token lifetimes.
const (
	defaultTokenTTL = time.Hour
	// MaxTokenTTL bounds every token and X.509-SVID issued on request.
	MaxTokenTTL   = 24 * time.Hour
	pruneInterval = time.Hour
)

// Principal is an authenticated caller: a SPIFFE ID of the trust domain
// (or another stable name) and its kind (admin, user, agent, session,
// sandbox, node). It has the fields of the HTTP router's principal, so the
// two convert into each other.
type Principal struct {
	ID   string
	Kind string
}

// Resource is what an action is on: a Cedar entity type ("" is the
// platform), its id, and the id of what scopes it (a session's agent). It
// has the fields of the HTTP router's resource.
type Resource struct {
	Type   string
	ID     string
	Parent string
}

// AgentDirectory is how security reads deployed agents: an agent's owner
// (for ownership decisions and secret use) and its manifest (egress hosts,
// secrets, tools). *session.Manager implements it.
type AgentDirectory interface {
	// AgentInfo returns an agent's owner and current manifest; ok is false
	// when the agent is not deployed.
	AgentInfo(ctx context.Context, name string) (info session.AgentInfo, ok bool, err error)
}

var _ AgentDirectory = (*session.Manager)(nil)

// Config configures Security.
type Config struct {
	// TrustDomain is the SPIFFE trust domain of every identity.
	TrustDomain string
	// CADir holds the CA's root and keys (created if absent).
	CADir string
	// DataDir holds secrets.key (created if absent).
	DataDir string
	// SignatureAgent, an https origin, turns on Web Bot Auth signing of
	// agents' outbound requests with a node key kept in DataDir
	// (botsign.go); "" signs nothing.
	SignatureAgent string
	// AuditRetention bounds the audit stream; AuthFailuresPerMinute is
	// how many failed authentications per remote address and minute are
	// audited one by one (at least 1).
	AuditRetention        audit.Retention
	AuthFailuresPerMinute int
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics registers the policy engine's collectors; nil: none.
	Metrics prometheus.Registerer
}

// Deps are the parts Security works with and does not own.
type Deps struct {
	// Store holds the security, revocations, approvals, secrets and audit
	// records. Required.
	Store *store.Store
	// Bootstrap is the admin token; nil accepts none.
	Bootstrap *auth.Bootstrap
	// Agents finds deployed agents. Required.
	Agents AgentDirectory
	// Sandboxes finds live sandboxes' ownership records; nil: there are
	// none.
	Sandboxes SandboxDirectory
	// PrincipalFrom returns the authenticated principal a context carries
	// (the HTTP router's, or a tool caller's): whose labels follow a call
	// into a session, who calls the model gateway. Nil: none does.
	PrincipalFrom func(ctx context.Context) (Principal, bool)
}

// Security holds the platform's identity, authorization, secrets, audit
// and approval parts. It is built by New after the store opens; Close
// stops it.
type Security struct {
	log       *slog.Logger
	td        spiffeid.TrustDomain
	ca        *identity.CA
	revoker   *identity.KVRevoker
	idauth    *identity.Authenticator
	bootstrap *auth.Bootstrap
	admin     Principal // what the bootstrap token authenticates as
	engine    *policy.Engine
	kv        store.KV // policies, trusted hosts, secret owners, labels
	secrets   *secrets.Manager
	audit     *audit.Log
	approvals *approval.Store
	labels    *labelStore
	authLimit *audit.Limiter // failed authentications audited one by one
	rate      rateCounter
	trusted   atomic.Pointer[hostCache]
	private   atomic.Pointer[hostCache] // private-host patterns
	now       func() time.Time

	agents        AgentDirectory
	sandboxes     SandboxDirectory // nil: no sandboxes
	principalFrom func(ctx context.Context) (Principal, bool)

	// owners look up the owner of a resource type other than the built-in
	// ones; see RegisterResourceOwner.
	omu    sync.RWMutex // protects owners
	owners map[string]OwnerFunc

	svids *sessionSVIDs          // session identities (identity.go)
	bots  *webbotauth.NodeSigner // outbound Web Bot Auth; nil: off (botsign.go)

	started   atomic.Bool
	stop      chan struct{} // closed by Close; stops the background workers
	closeOnce sync.Once
	wg        sync.WaitGroup

	// metricsReader is the metrics-reader role's ID (metricsreader.go).
	metricsReader string
}

// OwnerFunc returns the SPIFFE ID of the owner of a resource and whether it
// exists. It lets new resource kinds join authorization.
type OwnerFunc func(ctx context.Context, id, parent string) (owner string, exists bool, err error)

// New builds the CA, revoker, policy engine (with the stored user
// policies), secrets manager, audit stream and approvals. Start starts its
// background work; Close ends it.
func New(ctx context.Context, cfg Config, deps Deps) (*Security, error) {
	if deps.Store == nil || deps.Agents == nil {
		return nil, errors.New("security: Deps.Store and Deps.Agents are required")
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", cfg.TrustDomain, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	principalFrom := deps.PrincipalFrom
	if principalFrom == nil {
		principalFrom = func(context.Context) (Principal, bool) { return Principal{}, false }
	}
	s := &Security{log: log, td: td, bootstrap: deps.Bootstrap, now: now, owners: map[string]OwnerFunc{},
		agents: deps.Agents, sandboxes: deps.Sandboxes, principalFrom: principalFrom}
	s.admin = Principal{ID: spiffeid.RequireFromSegments(td, "admin", "admin").String(), Kind: string(identity.KindAdmin)}
	s.metricsReader = metricsReaderID(td)
	st := deps.Store
	if s.kv, err = st.KV(ctx, "security", store.KVOptions{Description: "policies, trusted hosts, secret owners, session labels"}); err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	revKV, err := st.KV(ctx, "revocations", store.KVOptions{Description: "revoked token ids"})
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	s.revoker = identity.NewKVRevoker(revKV, nil)
	if err := ensureJWTKey(cfg.CADir); err != nil {
		return nil, err
	}
	s.ca, err = identity.LoadOrCreateCA(identity.Config{TrustDomain: td.Name(), JWTTTL: MaxTokenTTL,
		Logger: log, Revoker: s.revoker}, cfg.CADir)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	s.idauth = &identity.Authenticator{CA: s.ca, Audience: APIAudience}
	if s.engine, err = policy.New(policy.Config{Logger: log, Metrics: cfg.Metrics}); err != nil {
		return nil, err
	}
	if s.audit, err = audit.Open(ctx, st, log, cfg.AuditRetention); err != nil {
		return nil, err
	}
	perSource := max(cfg.AuthFailuresPerMinute, 1)
	s.authLimit = audit.NewLimiter(perSource, authFailureGlobalFactor*perSource, authFailureSources, time.Minute)
	apKV, err := st.KV(ctx, "approvals", store.KVOptions{Description: "pending and resolved approvals"})
	if err != nil {
		return nil, s.abort(fmt.Errorf("security: %w", err))
	}
	s.approvals = approval.New(apKV, nil)
	secKV, err := st.KV(ctx, "secrets", store.KVOptions{Description: "AES-256-GCM sealed secrets"})
	if err != nil {
		return nil, s.abort(fmt.Errorf("security: %w", err))
	}
	key, err := secrets.LoadOrCreateKey(filepath.Join(cfg.DataDir, "secrets.key"))
	if err != nil {
		return nil, s.abort(fmt.Errorf("secrets key: %w", err))
	}
	if s.secrets, err = secrets.NewManager(key, secrets.NewKVStore(secKV)); err != nil {
		return nil, s.abort(err)
	}
	if s.bots, err = loadBotSigner(cfg.DataDir, cfg.SignatureAgent); err != nil {
		return nil, s.abort(err)
	}
	s.labels = &labelStore{kv: s.kv, audit: s.audit, now: s.now}
	if err := s.loadPolicies(ctx); err != nil {
		return nil, s.abort(err)
	}
	s.stop = make(chan struct{})
	s.svids = &sessionSVIDs{ca: s.ca, td: s.td, slots: map[string]*svidSlot{}, queue: make(chan *svidSlot, svidQueue)}
	return s, nil
}

// Start starts the background work: the revocation watch and pruner, the
// failed-authentication summaries and the session SVID minter. Call it
// once, after New and before serving; Close stops it.
func (s *Security) Start(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("security: started twice")
	}
	// Token checks read revocations from memory, kept current by a watch
	// that ends with Close (then they read the store). The watch outlives
	// ctx, which bounds starting only.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	if err := s.revoker.Watch(watchCtx); err != nil {
		stopWatch()
		return fmt.Errorf("security: revocation watch: %w", err)
	}
	if err := s.watchPolicies(watchCtx); err != nil {
		stopWatch()
		return fmt.Errorf("security: policy watch: %w", err)
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
	s.startSessionIdentities()
	return nil
}

// abort closes what New opened before it failed.
func (s *Security) abort(err error) error {
	s.audit.Close()
	return err
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
func (s *Security) summariseAuthFailures() {
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

func (s *Security) sweepAuthFailures(ctx context.Context, now time.Time) {
	for _, sum := range s.authLimit.Sweep(now) {
		s.recordAuthSummary(ctx, sum)
	}
}

// SweepAuthFailures ends the current minute of the failed-authentication
// budget now, writing its summary records as the minute's ticker (and
// Close) would, and waits until the audit stream holds them.
func (s *Security) SweepAuthFailures(ctx context.Context) error {
	s.sweepAuthFailures(ctx, s.now().Add(s.authLimit.Window()))
	return s.audit.Flush(ctx)
}

func (s *Security) recordAuthSummary(ctx context.Context, sum audit.Summary) {
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypeAuth, Outcome: "suppressed",
		Reason: fmt.Sprintf("%d more failed authentications from %s were not recorded one by one", sum.Suppressed, sum.Key),
		Detail: map[string]any{"remote": sum.Key, "suppressed": sum.Suppressed, "from": sum.From.UTC(), "to": sum.To.UTC()}})
}

// pruneRevocations drops revocations of tokens that have expired anyway.
func (s *Security) pruneRevocations() {
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

// TrustDomain is the platform's SPIFFE trust domain.
func (s *Security) TrustDomain() spiffeid.TrustDomain { return s.td }

// CA is the platform's certificate authority.
func (s *Security) CA() *identity.CA { return s.ca }

// Admin is the principal the bootstrap admin token authenticates as
// (spiffe://TD/admin/admin).
func (s *Security) Admin() Principal { return s.admin }

// IsAdmin reports whether owner (a principal's SPIFFE ID or name) is an
// administrator of this trust domain (per-owner caps exempt them).
func (s *Security) IsAdmin(owner string) bool {
	p, err := identity.ParsePrincipal(s.td, owner)
	return err == nil && p.Kind == identity.KindAdmin
}

// Audit is the audit stream: every part records its decisions there.
func (s *Security) Audit() *audit.Log { return s.audit }

// RegisterResourceOwner makes resources of typ subject to ownership in
// authorization: fn reports each one's owner (the SPIFFE ID of the
// principal that created it). Call before serving them.
func (s *Security) RegisterResourceOwner(typ string, fn OwnerFunc) {
	s.omu.Lock()
	defer s.omu.Unlock()
	s.owners[typ] = fn
}

// principalOf parses an authenticated principal back into an
// identity.Principal.
func (s *Security) principalOf(p Principal) (identity.Principal, error) {
	ip, err := identity.ParsePrincipal(s.td, p.ID)
	if err != nil {
		return identity.Principal{}, api.Errorf(api.KindForbidden, "principal %q is not an identity of trust domain %s", p.ID, s.td.Name())
	}
	return ip, nil
}

// ParseSubject reads "user:alice", "session:bot/s1", "admin" or a SPIFFE ID
// of the trust domain.
func (s *Security) ParseSubject(sub string) (identity.Principal, error) {
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

// Close stops the background workers and writes the queued audit records;
// the store closes after it. It waits for the workers until ctx ends.
func (s *Security) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("security: close: %w", ctx.Err())
		}
		s.audit.Close()
	})
	return err
}
