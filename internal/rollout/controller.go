package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Router is the part of the session manager a rollout drives: the
// routing of an agent's sessions and its stored versions.
type Router interface {
	ReadRouting(ctx context.Context, agent string) (session.RoutingState, error)
	SetRouting(ctx context.Context, agent string, r session.Routing, rev uint64, owner string) (uint64, error)
	Versions(ctx context.Context, agent string) ([]api.AgentVersion, error)
	VersionManifest(ctx context.Context, agent, digest string) (bundle.Manifest, error)
	DeleteVersion(ctx context.Context, agent, digest string) error
	LiveSessions(agent string) map[string]int
}

var _ Router = (*session.Manager)(nil)

// Ledger is where rollout steps and rollbacks are recorded.
type Ledger interface {
	Append(ctx context.Context, e ledger.Entry) (ledger.Receipt, error)
}

var _ Ledger = (*ledger.Ledger)(nil)

// Thresholds decide an analysis: the canary fails when, over at least
// MinCalls calls, its error rate exceeds the stable version's by more than
// MaxErrorRateIncrease, or its p99 latency exceeds the stable version's
// times MaxP99Ratio plus P99Slack.
type Thresholds struct {
	MinCalls             int
	MaxErrorRateIncrease float64
	MaxP99Ratio          float64
	P99Slack             time.Duration
}

// Config configures a Controller; the settings come from internal/config.
type Config struct {
	Store  *store.Store
	Router Router
	Ledger Ledger
	Meter  *Meter
	// Steps are the default steps, for a version whose manifest names none.
	Steps      []bundle.RolloutStep
	Thresholds Thresholds
	// Interval is how often Run looks at the running rollouts (default 1s).
	Interval time.Duration
	// VersionsKept is how many versions of an agent are kept; older ones
	// are pruned after a rollout ends (never the stable or canary ones);
	// 0 keeps all.
	VersionsKept int
	// Now tells the time step pauses are measured on (nil: time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Controller runs the rollouts of this node's agents.
type Controller struct {
	cfg Config
	kv  store.KV
	log *slog.Logger
	// mu serialises transitions on this node, so each one's routing
	// follows the state it wrote; across nodes the compare-and-set on the
	// state decides and sync converges the routing.
	mu sync.Mutex
}

// New opens the rollout bucket.
func New(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.Store == nil || cfg.Router == nil || cfg.Ledger == nil {
		return nil, errors.New("rollout: Store, Router and Ledger are required")
	}
	if cfg.Meter == nil {
		cfg.Meter = NewMeter()
	}
	if len(cfg.Steps) == 0 {
		cfg.Steps = []bundle.RolloutStep{{Percent: 10, PauseSeconds: 300}, {Percent: 50, PauseSeconds: 600}, {Percent: 100}}
	}
	if p := bundle.CheckRolloutSteps(cfg.Steps); p != nil {
		return nil, fmt.Errorf("rollout: default %w", p)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Thresholds.MaxP99Ratio < 1 {
		cfg.Thresholds.MaxP99Ratio = 1.5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := cfg.Store.KV(ctx, "rollouts", store.KVOptions{Description: "agent rollouts (stable, canary, step)"})
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return &Controller{cfg: cfg, kv: kv, log: cfg.Logger}, nil
}

// Meter is the observer to give the session manager (session.Bindings.Observer).
func (c *Controller) Meter() *Meter { return c.cfg.Meter }

// Starter is how the pipeline starts a rollout once a version is
// approved (its roll-out stage); *Controller is one.
type Starter interface {
	Start(ctx context.Context, req Start) (State, error)
}

var _ Starter = (*Controller)(nil)

// Start is what the pipeline asks for once a version is approved.
type Start struct {
	Agent   string
	Version string // a stored version's digest (session.Manager.AddVersion)
	// Steps override the version manifest's rollout and the default.
	Steps []bundle.RolloutStep
	// Parent is the ledger entry the rollout follows from (the change or
	// approval); without one, Start records the change itself.
	Parent *ledger.Ref
	// Author is who starts it (a SPIFFE ID or principal name): the
	// author of the change Start records, and the owner of an agent the
	// rollout creates.
	Author string
	// Expect, if set, is the version that must serve alone for the
	// rollout to start ("" for an agent not deployed yet): the version a
	// pipeline run was made against. Anything else is a conflict, so a
	// run never replaces a version it did not review against.
	Expect *string
	// Run names the pipeline run asking (stored in the state): a Start
	// for the run and version whose rollout exists already returns it
	// instead of starting again, so a resumed run does not start twice.
	Run string
}

// Start begins rolling out a version: it serves the first step's share of
// new sessions beside the stable version (or every session, when the
// agent has none yet or the first step is 100 %). A rollout of the agent
// that is still active is a conflict: promote, roll it back or wait.
func (c *Controller) Start(ctx context.Context, req Start) (State, error) {
	if p := api.CheckID("agent", api.IDAgent, req.Agent); p != nil {
		return State{}, p
	}
	man, err := c.cfg.Router.VersionManifest(ctx, req.Agent, req.Version)
	if err != nil {
		return State{}, err
	}
	steps := req.Steps
	if len(steps) == 0 && man.Rollout != nil {
		steps = man.Rollout.Steps
	}
	if len(steps) == 0 {
		steps = c.cfg.Steps
	}
	if p := bundle.CheckRolloutSteps(steps); p != nil {
		return State{}, api.FieldErrorf(api.KindValidation, "steps"+p.Field, "%s; %s", p.Problem, p.Fix)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Another member's controller may rewrite the agent's rollout record
	// between the read and the write below (its ledger bookkeeping of an
	// ended rollout): a lost write that is not this run's is tried again
	// from a fresh read, a few times.
	for attempt := 1; ; attempt++ {
		out, err := c.startLocked(ctx, &req, steps)
		if !errors.Is(err, errRetryStart) {
			return out, err
		}
		if attempt == 3 {
			return State{}, api.Errorf(api.KindConflict, "the rollout of %s changed meanwhile: %w", req.Agent, store.ErrConflict)
		}
	}
}

// errRetryStart: startLocked lost its write to another member's change of
// the record that is not this run's start.
var errRetryStart = errors.New("rollout: start again")

// startLocked is one attempt of Start (c.mu held). A change it records in
// the ledger becomes req.Parent, so another attempt does not record it
// again.
func (c *Controller) startLocked(ctx context.Context, req *Start, steps []bundle.RolloutStep) (State, error) {
	rt, err := c.cfg.Router.ReadRouting(ctx, req.Agent)
	if err != nil {
		return State{}, err
	}
	cur, err := c.read(ctx, req.Agent)
	if err != nil {
		return State{}, err
	}
	if req.Run != "" && cur.rev != 0 && cur.Run == req.Run && cur.Canary == req.Version {
		return cur.State, nil // started already: a resumed run asks again
	}
	if req.Expect != nil && (rt.Stable != *req.Expect || rt.Canary != "") {
		serving := "nothing"
		if rt.Exists && rt.Stable != "" {
			serving = "version " + short(rt.Stable)
		}
		want := "no version"
		if *req.Expect != "" {
			want = "version " + short(*req.Expect)
		}
		return State{}, api.Errorf(api.KindConflict, "agent %s serves %s (canary %q), not %s the change was made against; submit it again",
			req.Agent, serving, short(rt.Canary), want)
	}
	if cur.Phase.Active() {
		return State{}, api.Errorf(api.KindConflict, "agent %s is rolling out version %s (%s); promote or roll it back first", req.Agent, short(cur.Canary), cur.Phase)
	}
	if rt.Exists && rt.Stable == req.Version && rt.Canary == "" {
		return State{}, api.FieldErrorf(api.KindConflict, "version", "version %s of agent %s serves already", short(req.Version), req.Agent)
	}
	now := c.cfg.Now().UTC()
	st := State{Agent: req.Agent, Owner: req.Author, Run: req.Run, Stable: rt.Stable, Canary: req.Version, Steps: steps, Phase: PhaseRunning,
		Started: now, StepStarted: now, Updated: now, Seq: cur.Seq, LoggedSeq: cur.LoggedSeq, Pending: cur.Pending, Last: cur.Last}
	if !rt.Exists || rt.Stable == "" || steps[0].Percent == 100 && steps[0].PauseSeconds == 0 {
		// Nothing to compare with, or no canary step: it serves at once.
		st.Phase, st.Step, st.Reason = PhaseCompleted, len(steps)-1, "first version or a single 100% step"
	}
	parent := req.Parent
	if parent == nil {
		if parent, err = c.recordChange(ctx, req.Agent, req.Version, rt.Stable, req.Author); err != nil {
			return State{}, err
		}
		req.Parent = parent
	}
	st.Last = parent
	state := ledger.RolloutStarted
	if st.Phase == PhaseCompleted {
		state = ledger.RolloutCompleted
	}
	if err := st.record(c.stepEntry(st, state, nil)); err != nil {
		return State{}, err
	}
	if _, err := c.write(ctx, st, cur.rev); err != nil {
		// Two members may drive one run at once (each polls the runs that
		// wait for review): the one that lost the write finds the run's
		// rollout started by the other and answers with it.
		again, rerr := c.read(ctx, req.Agent)
		if rerr == nil && req.Run != "" && again.Run == req.Run && again.Canary == req.Version {
			return c.syncLocked(ctx, req.Agent)
		}
		if rerr == nil && errors.Is(err, store.ErrConflict) {
			return State{}, errRetryStart
		}
		return State{}, err
	}
	c.cfg.Meter.Reset(req.Agent)
	c.log.Info("rollout started", "agent", req.Agent, "version", short(req.Version), "percent", st.Percent())
	out, err := c.syncLocked(ctx, req.Agent)
	if err == nil && out.Phase == PhaseCompleted {
		c.prune(ctx, req.Agent, out)
	}
	return out, err
}

// recordChange appends a change entry for a rollout that did not come
// through the pipeline, as its ledger parent.
func (c *Controller) recordChange(ctx context.Context, agent, version, parent, author string) (*ledger.Ref, error) {
	if author == "" {
		author = "rollout"
	}
	ch := &ledger.Change{Agent: agent, Version: ledgerVersion(version), BundleDigest: ledger.Digest(version),
		Author: ledger.Identity{ID: author}, Message: "rolled out without a pipeline run"}
	if parent != "" {
		ch.ParentVersion = ledgerVersion(parent)
	}
	r, err := c.cfg.Ledger.Append(ctx, ledger.Entry{Type: ledger.TypeChange, Time: c.cfg.Now().UTC(), Change: ch})
	if err != nil {
		return nil, fmt.Errorf("record change of %s in the ledger: %w", agent, err)
	}
	return &r, nil
}

// stepEntry is the ledger entry of a rollout step (parents filled in when
// it is appended).
func (c *Controller) stepEntry(st State, state string, a *ledger.Analysis) ledger.Entry {
	return ledger.Entry{Type: ledger.TypeRollout, Time: c.cfg.Now().UTC(), Rollout: &ledger.RolloutStep{
		Agent: st.Agent, Version: ledgerVersion(st.Canary), Step: st.Step, Percent: st.Percent(), State: state, Analysis: a}}
}

// transition applies fn to agent's state and writes it by compare-and-set
// (a conflict when another node or call changed it first), then syncs the
// routing and the ledger. fn returns errNoChange to write nothing.
func (c *Controller) transition(ctx context.Context, agent string, fn func(st *State) error) (State, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, err := c.read(ctx, agent)
	if err != nil {
		return State{}, err
	}
	st := cur.State
	if err := fn(&st); errors.Is(err, errNoChange) {
		return c.syncLocked(ctx, agent)
	} else if err != nil {
		return State{}, err
	}
	st.Updated = c.cfg.Now().UTC()
	if _, err := c.write(ctx, st, cur.rev); err != nil {
		return State{}, err
	}
	return c.syncLocked(ctx, agent)
}

var errNoChange = errors.New("no change")

// maxSyncRounds bounds how often sync follows a state that keeps changing.
const maxSyncRounds = 8

// syncLocked makes the routing follow agent's stored state and appends
// its pending ledger entries, then returns the state. The routing is
// written against the routing's revision and the state is read again
// after: if it changed meanwhile (another node's transition), the routing
// follows again, so the last writer has seen the newest state. c.mu held.
func (c *Controller) syncLocked(ctx context.Context, agent string) (State, error) {
	for round := 0; ; round++ {
		cur, err := c.read(ctx, agent)
		if err != nil {
			return State{}, err
		}
		if cur.rev == 0 {
			return cur.State, nil
		}
		if cur.Routed < cur.Seq {
			if err := c.route(ctx, cur.State); err != nil {
				if (errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)) && round < maxSyncRounds { // another member routed first
					continue
				}
				return cur.State, err
			}
		}
		again, err := c.read(ctx, agent)
		if err != nil {
			return State{}, err
		}
		if again.rev != cur.rev {
			if round < maxSyncRounds {
				continue
			}
			return again.State, api.Errorf(api.KindConflict, "the rollout of %s keeps changing; try again", agent)
		}
		return c.logPending(ctx, again)
	}
}

// route sets the routing st asks for, unless it is set already. A
// routing another writer replaced (a plain deploy) wins: the rollout is
// left as it is and reported.
func (c *Controller) route(ctx context.Context, st State) error {
	want := st.Routing()
	rs, err := c.cfg.Router.ReadRouting(ctx, st.Agent)
	if err != nil {
		return err
	}
	if rs.Routing == want {
		return nil
	}
	if st.Phase != PhaseRolledBack && rs.Exists && !servesOnly(rs.Routing, st.Stable, st.Canary) {
		return api.Errorf(api.KindConflict, "agent %s was deployed outside its rollout (it serves %s); the rollout of %s stops here",
			st.Agent, short(rs.Stable), short(st.Canary))
	}
	_, err = c.cfg.Router.SetRouting(ctx, st.Agent, want, rs.Revision, st.Owner)
	return err
}

// servesOnly reports whether r serves nothing but versions a and b.
func servesOnly(r session.Routing, a, b string) bool {
	ok := func(d string) bool { return d == "" || d == a || d == b }
	return ok(r.Stable) && ok(r.Canary)
}

// logPending appends st's pending entries in order, each the parent of the
// next, and records that they are logged. An append whose record a crash
// cut off is appended again on the next sync (at least once). It also
// records that the routing of cur's Seq is set.
func (c *Controller) logPending(ctx context.Context, cur stored) (State, error) {
	for attempt := 0; ; attempt++ {
		st, conflict, err := c.logPendingOnce(ctx, cur)
		if !conflict || attempt >= maxSyncRounds {
			return st, err
		}
		// Another transition wrote meanwhile: start again from its state,
		// keeping what this attempt appended, so its new entries are
		// appended too and nothing is appended twice.
		fresh, rerr := c.read(ctx, st.Agent)
		if rerr != nil {
			return State{}, rerr
		}
		if st.LoggedSeq > fresh.LoggedSeq {
			fresh.LoggedSeq, fresh.Last = st.LoggedSeq, st.Last
			fresh.Pending = dropLogged(fresh.Pending, st.LoggedSeq)
		}
		cur = fresh
	}
}

// logPendingOnce appends cur's pending entries and records that against
// cur's revision; conflict reports that the state changed meanwhile (the
// returned state then holds what was appended).
func (c *Controller) logPendingOnce(ctx context.Context, cur stored) (State, bool, error) {
	st := cur.State
	routed := st.Seq
	if len(st.Pending) == 0 && st.Routed == routed {
		return st, false, nil
	}
	last := st.Last
	logged := st.LoggedSeq
	var appendErr error
	for _, p := range st.Pending {
		e := p.Entry
		if last != nil {
			e.Parents = []ledger.Ref{*last}
		}
		r, err := c.cfg.Ledger.Append(ctx, e)
		if err != nil {
			appendErr = fmt.Errorf("record rollout of %s in the ledger: %w", st.Agent, err)
			break
		}
		last, logged = &r, p.Seq
	}
	if logged == st.LoggedSeq && st.Routed == routed {
		return st, false, appendErr
	}
	st.LoggedSeq, st.Last, st.Routed = logged, last, max(st.Routed, routed)
	st.Pending = dropLogged(st.Pending, logged)
	_, err := c.write(ctx, st, cur.rev)
	if errors.Is(err, store.ErrConflict) {
		return st, true, errors.Join(appendErr, err)
	}
	return st, false, errors.Join(appendErr, err)
}

func dropLogged(p []PendingEntry, logged uint64) []PendingEntry {
	out := p[:0:0]
	for _, e := range p {
		if e.Seq > logged {
			out = append(out, e)
		}
	}
	return out
}

// ledgerVersion is a version digest as the ledger names versions (its hex).
func ledgerVersion(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func short(digest string) string {
	d := ledgerVersion(digest)
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}
