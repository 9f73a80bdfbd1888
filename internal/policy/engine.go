// Package policy owns authorization: the Cedar schema of agentcloud's
// entities and actions, the default policy set compiled into the binary,
// validation and versioned caching of user policies, the Engine that turns
// a request into an allow/deny/approvable decision, and session labels
// (integrity and confidentiality) as they appear in the Cedar context. It
// does not store entities or policies (the daemon supplies them through the
// Entities interface and Apply) and it does not authenticate anyone.
package policy

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed schema.cedarschema
var schemaText []byte

//go:embed default.cedar
var defaultText []byte

// Schema returns the Cedar schema text.
func Schema() []byte { return append([]byte(nil), schemaText...) }

// DefaultPolicies returns the default policy set text.
func DefaultPolicies() []byte { return append([]byte(nil), defaultText...) }

// UID is a Cedar entity UID, e.g. UID{Type: "Session", ID: "bot/s1"}.
type UID = types.EntityUID

// NewUID returns the UID of an entity.
func NewUID(typ, id string) UID { return types.NewEntityUID(types.EntityType(typ), types.String(id)) }

// Entities supplies entity data (attributes and parents) to the evaluator.
// Cedar calls Get synchronously while deciding, so implementations must be
// in-memory (a cache the daemon keeps in step with its store);
// types.EntityMap satisfies it.
type Entities interface {
	Get(uid types.EntityUID) (types.Entity, bool)
}

// Request is one authorization question.
type Request struct {
	Principal UID
	Action    string // e.g. "egress.fetch"
	Resource  UID
	Labels    Labels // the caller session's labels; zero for non-sessions
	// Context holds extra context keys; the label keys are always set from
	// Labels and cannot be overridden here.
	Context types.RecordMap
}

// Decision is the outcome.
type Decision struct {
	Allowed bool
	// Approvable is set on a denial caused only by @approvable forbids when
	// the request would otherwise be allowed: it may become a pending approval.
	Approvable bool
	// Reasons are the ids of the policies that decided: the permits that
	// allowed, or the forbids that denied. Empty on a default deny.
	Reasons []string
	// Errors are evaluation errors; an errored forbid denies (fail closed).
	Errors []string
}

// ErrStaleVersion is returned by Apply for a version older than the current.
var ErrStaleVersion = errors.New("stale policy version")

// Config configures an Engine.
type Config struct {
	Logger *slog.Logger // default discards
	// Metrics registers the engine's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
}

// Engine decides requests against the default policies plus the current
// user policy set. Safe for concurrent use; Decide takes no lock.
type Engine struct {
	log      *slog.Logger
	validate *validator
	defaults []compiled

	mu  sync.Mutex // serialises Apply
	cur atomic.Pointer[snapshot]
	met *metrics // nil: no metrics
}

// snapshot is an immutable parsed policy set, split by effect so that one
// evaluation of each policy tells both the decision and whether it is
// approvable (which needs to know whether any permit matched even when a
// forbid did; cedar.Authorize reports only the winning side).
type snapshot struct {
	version    uint64
	everything scoped                           // all policies, in document order
	approvable map[types.PolicyID]bool          // @approvable("true") forbids
	forbid     map[types.PolicyID]bool          // every forbid
	twins      map[types.PolicyID]*cedar.Policy // each forbid as a permit (scope.go)
	index      scopeIndex                       // everything filtered by request scope
	ctxUse     contextUse                       // what the policies read of the context (contextuse.go)
	cache      decisionCache                    // DecideCached's decisions (cache.go)
}

// policyList is a cedar.PolicyIterator over a fixed slice, in document order
// (defaults first, then user policies). Iterating a slice is cheaper than a
// PolicySet's map, and the order makes Reasons and Errors deterministic.
type policyList struct {
	ids []types.PolicyID
	ps  []*cedar.Policy
	seq iter.Seq2[types.PolicyID, *cedar.Policy] // built once: All allocates nothing
}

var _ cedar.PolicyIterator = (*policyList)(nil)

func (l *policyList) add(id types.PolicyID, p *cedar.Policy) {
	l.ids = append(l.ids, id)
	l.ps = append(l.ps, p)
}

func (l *policyList) seal() {
	ids, ps := l.ids, l.ps
	l.seq = func(yield func(types.PolicyID, *cedar.Policy) bool) {
		for i, id := range ids {
			if !yield(id, ps[i]) {
				return
			}
		}
	}
}

// All implements cedar.PolicyIterator.
func (l *policyList) All() iter.Seq2[types.PolicyID, *cedar.Policy] { return l.seq }

// New returns an Engine holding the default policy set and no user policies.
func New(cfg Config) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v, err := newValidator(schemaText)
	if err != nil {
		return nil, fmt.Errorf("new policy engine: schema: %w", err)
	}
	defs, err := parseAndValidate(v, "default.cedar", "", defaultText)
	if err != nil {
		return nil, fmt.Errorf("new policy engine: default policies: %w", err)
	}
	e := &Engine{log: log, validate: v, defaults: defs}
	if e.met, err = newMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("new policy engine: metrics: %w", err)
	}
	snap, err := e.build(0, nil)
	if err != nil {
		return nil, err
	}
	e.cur.Store(snap)
	return e, nil
}

// Version returns the version of the user policy set in force (0: none).
func (e *Engine) Version() uint64 { return e.cur.Load().version }

// Apply installs the user policy set src as version. If version equals the
// current version nothing is parsed (the cached set stays); an older version
// is refused with ErrStaleVersion. src is validated against the schema first;
// on error the current set stays in force and the error is a *ParseError or
// *ValidationError carrying line and column.
func (e *Engine) Apply(ctx context.Context, version uint64, src []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply policies v%d: %w", version, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := e.cur.Load()
	switch {
	case version == cur.version:
		return nil
	case version < cur.version:
		return fmt.Errorf("apply policies v%d (current v%d): %w", version, cur.version, ErrStaleVersion)
	}
	user, err := parseAndValidate(e.validate, "user.cedar", "user.", src)
	if err != nil {
		return fmt.Errorf("apply policies v%d: %w", version, err)
	}
	snap, err := e.build(version, user)
	if err != nil {
		return fmt.Errorf("apply policies v%d: %w", version, err)
	}
	e.cur.Store(snap)
	e.log.Info("policy set applied", "version", version, "user_policies", len(user))
	return nil
}

func (e *Engine) build(version uint64, user []compiled) (*snapshot, error) {
	s := &snapshot{version: version, approvable: map[types.PolicyID]bool{}, forbid: map[types.PolicyID]bool{},
		twins: map[types.PolicyID]*cedar.Policy{}}
	seen := map[types.PolicyID]bool{}
	for _, list := range [][]compiled{e.defaults, user} {
		for _, c := range list {
			if seen[c.id] {
				return nil, fmt.Errorf("duplicate policy id %q", c.id)
			}
			seen[c.id] = true
			s.ctxUse.add(c.policy)
			if c.policy.Effect() != cedar.Forbid {
				s.everything.permits.add(c.id, c.policy)
				continue
			}
			s.everything.forbids.add(c.id, c.policy)
			s.forbid[c.id] = true
			s.twins[c.id] = permitTwin(c.policy)
			if c.approvable {
				s.approvable[c.id] = true
			}
		}
	}
	s.everything.seal(s.twins)
	return s, nil
}

// Decide answers req using entity data from ents.
func (e *Engine) Decide(ctx context.Context, ents Entities, req Request) (Decision, error) {
	d, err := e.decide(ctx, ents, req)
	e.met.decided(req.Action, d, err)
	return d, err
}

func (e *Engine) decide(ctx context.Context, ents Entities, req Request) (Decision, error) {
	return e.decideIn(ctx, e.cur.Load(), ents, req)
}

// decideIn decides req under the policy snapshot snap.
func (e *Engine) decideIn(ctx context.Context, snap *snapshot, ents Entities, req Request) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("decide %s: %w", req.Action, err)
	}
	if req.Action == "" {
		return Decision{}, errors.New("decide: empty action")
	}
	if ents == nil {
		ents = types.EntityMap{}
	}
	creq := cedar.Request{
		Principal: req.Principal,
		Action:    types.NewEntityUID("Action", types.String(req.Action)),
		Resource:  req.Resource,
		Context:   contextRecord(&snap.ctxUse, req.Labels, req.Context),
	}
	// One cedar.Authorize evaluates each policy that may apply exactly
	// once, with every forbid as its permit twin (scope.go), so that it
	// reports every policy that matched or errored; the decision is then
	// Cedar's (any satisfied forbid denies; otherwise any satisfied permit
	// allows; otherwise deny), except that an errored forbid denies too
	// (fail closed), and it also tells whether a permit matched under an
	// approvable forbid. Policies whose scope cannot match are skipped.
	sc := snap.forRequest(ents, creq)
	_, diag := cedar.Authorize(&sc.all, ents, creq)
	var d Decision
	var forbidErrs, permitErrs int
	if len(diag.Errors) > 0 {
		d.Errors = make([]string, 0, len(diag.Errors))
		for _, er := range diag.Errors {
			d.Errors = append(d.Errors, er.String())
			if snap.forbid[er.PolicyID] {
				forbidErrs++
			} else {
				permitErrs++
			}
		}
	}
	forbids, permits := 0, 0
	for _, r := range diag.Reasons {
		if snap.forbid[r.PolicyID] {
			forbids++
		} else {
			permits++
		}
	}
	if forbids == 0 && forbidErrs == 0 {
		if permits > 0 {
			d.Allowed = true
			d.Reasons = reasonIDs(diag.Reasons, nil, snap.forbid, false)
		}
		return d, nil
	}
	// Denied by forbids that matched or errored.
	d.Reasons = reasonIDs(diag.Reasons, diag.Errors, snap.forbid, true)
	if forbidErrs > 0 {
		e.log.Warn("forbid policy errored; denying", "action", req.Action, "errors", d.Errors)
		return d, nil
	}
	for _, r := range diag.Reasons {
		if snap.forbid[r.PolicyID] && !snap.approvable[r.PolicyID] {
			return d, nil
		}
	}
	// Only approvable forbids denied: approval can help only if the request
	// would be allowed without them, i.e. a permit matched and none errored.
	d.Approvable = permits > 0 && permitErrs == 0
	return d, nil
}

// reasonIDs lists the ids of the reasons and then of the errors whose
// policies are forbids (forbid true) or permits (forbid false).
func reasonIDs(reasons []cedar.DiagnosticReason, errs []cedar.DiagnosticError, forbids map[types.PolicyID]bool, forbid bool) []string {
	out := make([]string, 0, len(reasons)+len(errs))
	for _, r := range reasons {
		if forbids[r.PolicyID] == forbid {
			out = append(out, string(r.PolicyID))
		}
	}
	for _, er := range errs {
		if forbids[er.PolicyID] == forbid {
			out = append(out, string(er.PolicyID))
		}
	}
	return out
}
