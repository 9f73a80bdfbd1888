package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Config configures a Runner. Every stage dependency but Tester is
// required (without a Tester the test stage is skipped).
type Config struct {
	Store    *store.Store
	Versions Versions
	Tester   Tester
	Gate     Gate
	Reviews  Reviews
	Signer   Signer
	Ledger   Ledger
	Rollout  Rollout
	// Previews sets agents' preview versions (preview runs, preview.go);
	// nil: Submit refuses a preview.
	Previews Previews
	// Targets are the configuration this node changes through runs
	// (SubmitConfig), by api.Config* name; none: SubmitConfig refuses.
	Targets map[string]ConfigTarget
	// Builder is the node's SPIFFE ID (the provenance's builder);
	// BuilderVersion agentcloud's version.
	Builder        string
	BuilderVersion string
	// Steps are the default rollout steps handed to Rollout.
	Steps []Step
	// TestTimeout bounds the whole test stage (default 2 minutes): hanging
	// tests are stopped and fail the run.
	TestTimeout time.Duration
	// MaxStageLog caps what one stage may log (default 64 KiB); the rest
	// is counted as dropped.
	MaxStageLog int
	// ReviewPoll is how often runs waiting for review look at their
	// approval, to notice one resolved through the approvals API rather
	// than Approve or Reject (default 2s).
	ReviewPoll time.Duration
	// BuildRetry is the first wait before the build stage tries again a
	// build the store could not serve (a 503: a cluster member
	// restarting); it doubles, buildTries tries in all (default 250ms).
	BuildRetry time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
	// Metrics registers the runner's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
}

// Runner executes pipeline runs. It is safe for concurrent use.
type Runner struct {
	cfg    Config
	kv     store.KV
	events store.Log
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	driving map[string]*driver         // runs with a goroutine working on them
	watch   map[string][]chan struct{} // woken on every change of a run
	closed  bool
	polling bool
	wg      sync.WaitGroup
	closing chan struct{}

	bmu     sync.Mutex
	bundles []cachedBundle // versionBundle's, oldest first

	met *metrics // nil: no metrics
}

// driver is the goroutine working on one run.
type driver struct {
	cancel context.CancelCauseFunc
	again  bool // kicked while working: look at the run once more
}

// errClosing is the cause of a stage's context ending because the runner
// is closing: the run stays where it is and resumes at the next Start.
var errClosing = errors.New("pipeline runner closing")

// errCancelRequested ends a stage when its run is cancelled.
var errCancelRequested = errors.New("pipeline run cancelled")

// New opens the runner's bucket and event log.
func New(ctx context.Context, cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Versions == nil || cfg.Gate == nil || cfg.Reviews == nil ||
		cfg.Signer == nil || cfg.Ledger == nil || cfg.Rollout == nil {
		return nil, errors.New("pipeline: Store, Versions, Gate, Reviews, Signer, Ledger and Rollout are required")
	}
	if cfg.Builder == "" {
		return nil, errors.New("pipeline: Builder (the node's SPIFFE ID) is required")
	}
	if cfg.TestTimeout <= 0 {
		cfg.TestTimeout = 2 * time.Minute
	}
	if cfg.MaxStageLog <= 0 {
		cfg.MaxStageLog = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReviewPoll <= 0 {
		cfg.ReviewPoll = 2 * time.Second
	}
	if cfg.BuildRetry <= 0 {
		cfg.BuildRetry = 250 * time.Millisecond
	}
	if len(cfg.Steps) == 0 {
		cfg.Steps = []Step{{Percent: 100}}
	}
	kv, err := cfg.Store.KV(ctx, "pipeline_runs", store.KVOptions{Description: "pipeline runs, reports and provenance"})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	ev, err := cfg.Store.Log(ctx, "pipeline_events", store.LogOptions{Description: "pipeline run progress and logs",
		Subjects: []string{"pipeline.>"}, MaxAge: 30 * 24 * time.Hour})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("pipeline: metrics: %w", err)
	}
	return &Runner{cfg: cfg, kv: kv, events: ev, log: cfg.Logger, now: cfg.Now, met: met,
		driving: map[string]*driver{}, watch: map[string][]chan struct{}{}, closing: make(chan struct{})}, nil
}

// Start resumes every run that has not ended: a run interrupted mid-stage
// runs that stage again (stages are idempotent), a waiting run looks at its
// approval again.
func (r *Runner) Start(ctx context.Context) error {
	keys, err := r.kv.Keys(ctx, "run")
	if err != nil {
		return fmt.Errorf("pipeline resume: %w", err)
	}
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err != nil || len(parts) != 2 {
			continue
		}
		rec, _, err := r.load(ctx, parts[1])
		if err != nil {
			r.log.Warn("pipeline run unreadable; not resumed", "key", k, "err", err)
			continue
		}
		if !rec.Run.Terminal() {
			r.log.Info("resuming pipeline run", "run", rec.Run.ID, "agent", rec.Run.Agent, "stage", rec.Run.Stage)
			r.kick(rec.Run.ID)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed && !r.polling {
		r.polling = true
		r.wg.Add(1)
		go r.pollReviews()
	}
	return nil
}

// pollReviews kicks, every ReviewPoll, the runs that wait for review, so an
// approval resolved elsewhere moves them on.
func (r *Runner) pollReviews() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.ReviewPoll)
	defer t.Stop()
	for {
		select {
		case <-r.closing:
			return
		case <-t.C:
		}
		// The reads get more than one poll interval: a short interval on a
		// loaded node must not time every poll out before it kicks a run.
		ctx, cancel := context.WithTimeout(context.Background(), max(r.cfg.ReviewPoll, 10*time.Second))
		keys, err := r.kv.Keys(ctx, "active")
		for _, k := range keys {
			e, err := r.kv.Get(ctx, k)
			if err != nil || len(e.Value) == 0 {
				continue
			}
			id, _ := parseClaim(e.Value)
			if id == "" {
				continue
			}
			if rec, _, err := r.load(ctx, id); err == nil && rec.Run.State == api.RunWaiting {
				r.kick(rec.Run.ID)
			}
		}
		cancel()
		if err != nil {
			r.log.Warn("pipeline review poll", "err", err)
		}
	}
}

// Close stops working on runs (each stays where it is, to resume at the
// next Start) and waits for the stage in progress to return.
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.closing)
	for _, d := range r.driving {
		d.cancel(errClosing)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Submission is a change to run through the pipeline.
type Submission struct {
	Bundle    *bundle.Bundle
	Principal api.PipelinePrincipal
	Message   string
	// Preview makes the run a preview run (api.RunKindPreview): the
	// version is tested and recorded, then serves the agent's preview
	// sessions only.
	Preview bool
}

// checkPrincipal validates who a run or a review is by.
func checkPrincipal(field string, p api.PipelinePrincipal) error {
	switch p.Kind {
	case api.AuthorHuman, api.AuthorAgent, api.AuthorSession:
	default:
		return api.FieldErrorf(api.KindValidation, field+".kind", "principal kind %q: want human, agent or session", clipText(p.Kind, 40))
	}
	if p.ID == "" || len(p.ID) > 512 {
		return api.FieldErrorf(api.KindValidation, field+".id", "principal id must be 1 to 512 bytes")
	}
	if len(p.Labels) > 64 {
		return api.FieldErrorf(api.KindValidation, field+".labels", "%d labels: the limit is 64", len(p.Labels))
	}
	for k, v := range p.Labels {
		if k == "" || len(k) > 128 || len(v) > 256 {
			return api.FieldErrorf(api.KindValidation, field+".labels", "label %q: keys are 1 to 128 bytes, values up to 256", clipText(k, 40))
		}
	}
	return nil
}

// MaxMessage caps a run's message.
const MaxMessage = 4096

// Submit starts a run for s: the bundle is stored as an immutable version
// (not current), the run is recorded with the agent's current version as
// its parent, and the runner works on it in the background. One run per
// agent is active at a time: a second Submit while one is in progress is
// a conflict naming it.
func (r *Runner) Submit(ctx context.Context, s Submission) (api.PipelineRun, error) {
	if s.Bundle == nil {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "bundle", "a bundle is required")
	}
	if err := checkPrincipal("principal", s.Principal); err != nil {
		return api.PipelineRun{}, err
	}
	if len(s.Message) > MaxMessage {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "message", "message is %d bytes; the limit is %d", len(s.Message), MaxMessage)
	}
	agent := s.Bundle.Manifest.Name
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return api.PipelineRun{}, p
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return api.PipelineRun{}, api.Errorf(api.KindUnavailable, "the pipeline is shutting down")
	}
	if _, err := r.cfg.Versions.StoreVersion(ctx, s.Bundle); err != nil {
		return api.PipelineRun{}, err
	}
	parent, kind, stages, err := r.parentOf(ctx, agent, s)
	if err != nil {
		return api.PipelineRun{}, err
	}
	id := newRunID()
	now := r.now().UTC()
	run := api.PipelineRun{ID: id, Agent: agent, State: api.RunPending, Stage: api.StageValidate, Kind: kind,
		Principal: s.Principal, Bundle: s.Bundle.Digest, Parent: parent, Message: s.Message, Created: now, Updated: now}
	if err := r.claim(ctx, claimOf(run), id); err != nil {
		return api.PipelineRun{}, err
	}
	for _, name := range stages {
		run.Stages = append(run.Stages, api.PipelineStage{Name: name, State: api.StagePending})
	}
	b, _ := json.Marshal(record{Run: run})
	if _, err := r.kv.Create(ctx, runKey(id), b); err != nil {
		r.unclaim(context.WithoutCancel(ctx), claimOf(run), id)
		return api.PipelineRun{}, fmt.Errorf("pipeline run: %w", err)
	}
	r.emit(ctx, id, api.EventRun, "", api.RunPending, fmt.Sprintf("run for agent %s version %s by %s %s", agent, short(s.Bundle.Digest), s.Principal.Kind, s.Principal.ID))
	r.kick(id)
	return run, nil
}

// claimGrace is how long a claim whose run record is not written yet
// counts as held: Submit writes the record right after claiming, so a
// claim older than this without a record is left over from a crash.
const claimGrace = 30 * time.Second

// claimValue is the active key's value: the holder's run id and when it
// claimed (so a claim whose record is not written yet is told from one left
// by a crash).
func claimValue(id string, at time.Time) []byte {
	return []byte(id + " " + strconv.FormatInt(at.UnixNano(), 10))
}

// parseClaim reads a claimValue; an empty value is a free claim.
func parseClaim(v []byte) (id string, at time.Time) {
	id, ns, _ := strings.Cut(string(v), " ")
	n, _ := strconv.ParseInt(ns, 10, 64)
	return id, time.Unix(0, n)
}

// claim makes id the agent's active run, unless another run that has not
// ended holds it. A holder whose record does not exist yet is being
// admitted by a concurrent Submit (claim comes before the record) and
// holds the claim for claimGrace.
func (r *Runner) claim(ctx context.Context, agent, id string) error {
	key := activeKey(agent)
	for range maxUpdateRetries {
		_, err := r.kv.Create(ctx, key, claimValue(id, r.now()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("pipeline claim %s: %w", agent, err)
		}
		e, err := r.kv.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pipeline claim %s: %w", agent, err)
		}
		holder, at := parseClaim(e.Value)
		if holder != "" {
			rec, _, lerr := r.load(ctx, holder)
			switch {
			case lerr == nil && !rec.Run.Terminal():
				return api.Errorf(api.KindConflict, "agent %s has run %s in progress (%s at %s); wait for it or cancel it", agent, holder, rec.Run.State, rec.Run.Stage)
			case api.IsKind(lerr, api.KindNotFound) && r.now().Sub(at) < claimGrace:
				return api.Errorf(api.KindConflict, "agent %s has run %s being admitted; try again in a moment", agent, holder)
			}
		}
		if _, err := r.kv.Update(ctx, key, claimValue(id, r.now()), e.Revision); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("pipeline claim %s: %w", agent, err)
		}
	}
	return api.Errorf(api.KindConflict, "agent %s: too many runs at once; try again", agent)
}

// unclaim frees the agent's active slot if id holds it.
func (r *Runner) unclaim(ctx context.Context, agent, id string) {
	e, err := r.kv.Get(ctx, activeKey(agent))
	if holder, _ := parseClaim(e.Value); err != nil || holder != id {
		return
	}
	_, _ = r.kv.Update(ctx, activeKey(agent), nil, e.Revision) // empty: free (claim finds no run)
}

// kick makes sure a goroutine works on run id.
func (r *Runner) kick(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if d := r.driving[id]; d != nil {
		d.again = true
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	d := &driver{cancel: cancel}
	r.driving[id] = d
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			r.drive(ctx, id)
			r.mu.Lock()
			if d.again && !r.closed {
				d.again = false
				r.mu.Unlock()
				continue
			}
			delete(r.driving, id)
			r.mu.Unlock()
			cancel(nil)
			return
		}
	}()
}

// interrupt cancels the stage in progress of run id, if any.
func (r *Runner) interrupt(id string) {
	r.mu.Lock()
	if d := r.driving[id]; d != nil {
		d.cancel(errCancelRequested)
	}
	r.mu.Unlock()
}

// notify wakes the watchers of run id.
func (r *Runner) notify(id string) {
	r.mu.Lock()
	ws := r.watch[id]
	delete(r.watch, id)
	r.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// changed returns a channel closed at the next change of run id.
func (r *Runner) changed(id string) <-chan struct{} {
	ch := make(chan struct{})
	r.mu.Lock()
	r.watch[id] = append(r.watch[id], ch)
	r.mu.Unlock()
	return ch
}

// Wait blocks until run id has ended or waits for a review (or ctx ends)
// and returns it as last read. It reads the run again only when told it
// changed: by this node's runner (every change of a run is followed by an
// event, and emit wakes the waiters), or, for a run no goroutine of this
// node drives (another node's, or one a review will move on), by a watch
// of the run's key in the store.
func (r *Runner) Wait(ctx context.Context, id string) (api.PipelineRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var watching <-chan struct{}
	for {
		ch := r.changed(id)
		run, err := r.Get(ctx, id)
		if err != nil || run.Terminal() || waitsForReview(run) {
			return run, err
		}
		if watching == nil && !r.drivenHere(id) {
			done, err := r.kv.WatchKey(ctx, runKey(id), func(store.WatchEvent) { r.notify(id) })
			if err != nil {
				return run, fmt.Errorf("pipeline run %s: watch: %w", id, err)
			}
			watching = done
			continue // the watch started after the read: read again
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-ch:
		case <-watching: // the watch failed: watch again
			watching = nil
		}
	}
}

// drivenHere reports whether a goroutine of this runner works on run id.
func (r *Runner) drivenHere(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.driving[id] != nil
}

// Changed returns a channel closed at the next change of run id made by
// this node's runner (a new event of the run, a change of its record).
func (r *Runner) Changed(id string) <-chan struct{} { return r.changed(id) }

// waitsForReview reports whether run waits for a person (nothing else
// will move it).
func waitsForReview(run api.PipelineRun) bool {
	return run.State == api.RunWaiting && !run.CancelRequested && (run.Review == nil || run.Review.Decision == "")
}

// Cancel asks run id to stop: a pending or waiting run ends at once, a
// running one when its stage returns. The old version keeps serving
// unless the rollout stage had already switched it. Cancelling a run that
// has ended is a conflict.
func (r *Runner) Cancel(ctx context.Context, id string, by api.PipelinePrincipal) (api.PipelineRun, error) {
	if err := checkPrincipal("principal", by); err != nil {
		return api.PipelineRun{}, err
	}
	rec, err := r.update(ctx, id, func(rec *record) error {
		if rec.Run.Terminal() {
			return api.Errorf(api.KindConflict, "pipeline run %s has ended (%s)", id, rec.Run.State)
		}
		if !rec.Run.CancelRequested {
			rec.Run.CancelRequested = true
			rec.Run.Error = "cancelled by " + by.ID
		}
		return nil
	})
	if err != nil {
		return api.PipelineRun{}, err
	}
	r.emit(ctx, id, api.EventRun, "", "", "cancel requested by "+by.ID)
	r.interrupt(id)
	r.kick(id)
	return rec.Run, nil
}

// Approve records reviewer's approval of run id, which must be waiting for
// review; the run goes on.
func (r *Runner) Approve(ctx context.Context, id string, reviewer api.PipelinePrincipal, comment string) (api.PipelineRun, error) {
	return r.review(ctx, id, reviewer, comment, true)
}

// Reject records reviewer's rejection of run id; the run fails.
func (r *Runner) Reject(ctx context.Context, id string, reviewer api.PipelinePrincipal, comment string) (api.PipelineRun, error) {
	return r.review(ctx, id, reviewer, comment, false)
}

func (r *Runner) review(ctx context.Context, id string, reviewer api.PipelinePrincipal, comment string, approve bool) (api.PipelineRun, error) {
	if err := checkPrincipal("reviewer", reviewer); err != nil {
		return api.PipelineRun{}, err
	}
	if len(comment) > MaxMessage {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "comment", "comment is %d bytes; the limit is %d", len(comment), MaxMessage)
	}
	rec, _, err := r.load(ctx, id)
	if err != nil {
		return api.PipelineRun{}, err
	}
	run := rec.Run
	if run.Terminal() {
		return api.PipelineRun{}, api.Errorf(api.KindConflict, "pipeline run %s has ended (%s)", id, run.State)
	}
	if run.Review == nil || run.Review.Approval == "" || run.Review.Decision != "" {
		return api.PipelineRun{}, api.Errorf(api.KindConflict, "pipeline run %s is not waiting for review (it is %s at %s)", id, run.State, run.Stage)
	}
	if err := selfReview(reviewer, run); err != nil {
		return api.PipelineRun{}, err
	}
	if err := r.cfg.Gate.MayApprove(ctx, reviewer, run); err != nil {
		return api.PipelineRun{}, err
	}
	a, err := r.cfg.Reviews.Resolve(ctx, run.Review.Approval, approve, reviewer.ID)
	if err != nil {
		return api.PipelineRun{}, fmt.Errorf("review of %s: %w", id, err)
	}
	decision := api.ReviewRejected
	if approve {
		decision = api.ReviewApproved
	}
	rec, err = r.update(ctx, id, func(rec *record) error {
		if rec.Run.Review == nil || rec.Run.Review.Approval != a.ID {
			return api.Errorf(api.KindConflict, "pipeline run %s changed during the review", id)
		}
		if rec.Run.Review.Decision == "" {
			rec.Run.Review.Decision, rec.Run.Review.By, rec.Run.Review.At, rec.Run.Review.Comment = decision, reviewer.ID, r.now().UTC(), comment
		}
		return nil
	})
	if err != nil {
		return api.PipelineRun{}, err
	}
	r.emit(ctx, id, api.EventStage, api.StageReview, "", decision+" by "+reviewer.ID)
	r.kick(id)
	return rec.Run, nil
}

// selfReview refuses a review by the run's author, or by the agent whose
// change it is (its sessions included): an agent never approves its own
// change, whatever the policy says.
func selfReview(reviewer api.PipelinePrincipal, run api.PipelineRun) error {
	if reviewer.ID == run.Principal.ID {
		return api.Errorf(api.KindForbidden, "%s made this change and cannot review it", reviewer.ID)
	}
	if reviewer.Kind != api.AuthorHuman {
		if reviewerAgent(reviewer) == run.Agent || (run.Principal.Kind != api.AuthorHuman && reviewerAgent(reviewer) == reviewerAgent(run.Principal) && reviewerAgent(reviewer) != "") {
			return api.Errorf(api.KindForbidden, "agent %s cannot review its own change", run.Agent)
		}
	}
	return nil
}

// reviewerAgent is the agent a principal acts for: its "agent" label.
func reviewerAgent(p api.PipelinePrincipal) string { return p.Labels["agent"] }

// copyLabels returns a copy of labels (nil for none).
func copyLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	return maps.Clone(l)
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
