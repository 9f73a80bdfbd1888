package pipeline

// Configuration runs (config.go): a change to the platform's configuration
// — the user policy set, trusted and private hosts, an upstream's tool
// pins, a secret's metadata — goes through validate → policy → review →
// record → apply, so it is reviewed where policy asks and recorded in the
// ledger like a change of code. The value a target holds is behind
// ConfigTarget; the runner keeps the proposed value next to the run and
// applies it exactly once (see apply).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline/textdiff"
	"github.com/agentcloud/agentcloud/internal/store"
)

// ConfigValue is a target's value in canonical form: the same value always
// gives the same Value bytes (so its digest names it), Items are what the
// value grants (hosts, tools) so a change's additions can be told from its
// removals, and Text is how a diff shows it.
type ConfigValue struct {
	Value json.RawMessage
	Items []string
	Text  string
}

// ConfigTarget is one piece of the platform's configuration that runs
// change.
type ConfigTarget interface {
	// Check validates a proposed value of name and returns its canonical
	// form; a bad value is a validation problem naming the field.
	Check(ctx context.Context, name string, value json.RawMessage) (ConfigValue, error)
	// Current returns the value in force (ok false when there is none) and
	// who owns the target ("" for the platform's own configuration).
	Current(ctx context.Context, name string) (v ConfigValue, owner string, ok bool, err error)
	// Apply puts value (as Check returned it) in force on behalf of by.
	Apply(ctx context.Context, name string, value json.RawMessage, by string) error
}

// MaxConfigValue caps a proposed configuration value.
const MaxConfigValue = 512 << 10

// ConfigSubmission is a configuration change to run through the pipeline.
type ConfigSubmission struct {
	Target    string
	Name      string
	Value     json.RawMessage
	Principal api.PipelinePrincipal
	Message   string
}

// Keys of a configuration run's proposed value (as sent, then canonical)
// and of the text of the value it replaces (for its diff).
func valueKey(id string) string  { return store.Key("value", id) }
func parentKey(id string) string { return store.Key("parent", id) }

// configClaim is the name a configuration run claims its target under (it
// cannot be an agent's name: agent ids have no ':').
func configClaim(target, name string) string { return "config:" + target + ":" + name }

// claimOf is what run holds while it is active: its agent, or its target.
func claimOf(run api.PipelineRun) string {
	if c := run.Config; c != nil {
		return configClaim(c.Target, c.Name)
	}
	if run.Kind == api.RunKindPreview {
		return previewClaim(run.Agent)
	}
	return run.Agent
}

// configTarget returns the target a run or submission names.
func (r *Runner) configTarget(target string) (ConfigTarget, error) {
	t, ok := r.cfg.Targets[target]
	if !ok {
		known := make([]string, 0, len(r.cfg.Targets))
		for k := range r.cfg.Targets {
			known = append(known, k)
		}
		slices.Sort(known)
		return nil, api.FieldErrorf(api.KindValidation, "target", "%q is not a configuration this node changes through the pipeline (it changes %v)", clipText(target, 40), known)
	}
	return t, nil
}

// SubmitConfig starts a configuration run: the proposed value is kept
// next to the run, the digest of the value in force is its parent, and
// the runner works on it in the background. One run per target is active
// at a time (a second is a conflict naming the first). A value its target
// refuses is a validation problem naming the field, and no run.
func (r *Runner) SubmitConfig(ctx context.Context, s ConfigSubmission) (api.PipelineRun, error) {
	t, err := r.configTarget(s.Target)
	if err != nil {
		return api.PipelineRun{}, err
	}
	if len(s.Name) > 512 || strings.ContainsAny(s.Name, ":\x00") {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "name", "a target name is at most 512 bytes without ':' or NUL")
	}
	if err := checkPrincipal("principal", s.Principal); err != nil {
		return api.PipelineRun{}, err
	}
	if len(s.Message) > MaxMessage {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "message", "message is %d bytes; the limit is %d", len(s.Message), MaxMessage)
	}
	if len(s.Value) > MaxConfigValue {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "value", "the value is %d bytes; the limit is %d", len(s.Value), MaxConfigValue)
	}
	if !json.Valid(s.Value) {
		return api.PipelineRun{}, api.FieldErrorf(api.KindValidation, "value", "the value is not JSON")
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return api.PipelineRun{}, api.Errorf(api.KindUnavailable, "the pipeline is shutting down")
	}
	// A value that does not validate is refused before a run, as a bundle
	// that does not load is: nothing is recorded, nothing changes. (The
	// validate stage checks it again, on the node that runs it.)
	if _, err := t.Check(ctx, s.Name, s.Value); err != nil {
		return api.PipelineRun{}, err
	}
	cur, owner, ok, err := t.Current(ctx, s.Name)
	if err != nil {
		return api.PipelineRun{}, err
	}
	parent := ""
	if ok {
		parent = digestOf(cur.Value)
	}
	id := newRunID()
	claim := configClaim(s.Target, s.Name)
	if err := r.claim(ctx, claim, id); err != nil {
		return api.PipelineRun{}, err
	}
	if _, err := r.kv.Put(ctx, parentKey(id), []byte(cur.Text)); err != nil {
		r.unclaim(context.WithoutCancel(ctx), claim, id)
		return api.PipelineRun{}, fmt.Errorf("pipeline run value: %w", err)
	}
	if _, err := r.kv.Put(ctx, valueKey(id), s.Value); err != nil {
		r.unclaim(context.WithoutCancel(ctx), claim, id)
		return api.PipelineRun{}, fmt.Errorf("pipeline run value: %w", err)
	}
	now := r.now().UTC()
	run := api.PipelineRun{ID: id, Kind: api.RunKindConfig, State: api.RunPending, Stage: api.StageValidate,
		Principal: s.Principal, Parent: parent, Message: s.Message, Created: now, Updated: now,
		Config: &api.PipelineConfigChange{Target: s.Target, Name: s.Name, Owner: owner, Parent: parent}}
	for _, name := range api.ConfigStages() {
		run.Stages = append(run.Stages, api.PipelineStage{Name: name, State: api.StagePending})
	}
	b, _ := json.Marshal(record{Run: run})
	if _, err := r.kv.Create(ctx, runKey(id), b); err != nil {
		r.unclaim(context.WithoutCancel(ctx), claim, id)
		return api.PipelineRun{}, fmt.Errorf("pipeline run: %w", err)
	}
	r.emit(ctx, id, api.EventRun, "", api.RunPending, fmt.Sprintf("run for %s by %s %s", targetName(run.Config), s.Principal.Kind, s.Principal.ID))
	r.kick(id)
	return run, nil
}

// targetName is how logs and reasons name a configuration target.
func targetName(c *api.PipelineConfigChange) string {
	if c.Name != "" {
		return c.Target + " " + c.Name
	}
	return c.Target
}

// configStageFuncs are the stages of a configuration run.
func (r *Runner) configStageFuncs() map[string]stageFunc {
	return map[string]stageFunc{
		api.StageValidate: r.validateConfig,
		api.StageGate:     r.gate,
		api.StageReview:   r.reviewStage,
		api.StageRecord:   r.recordConfig,
		api.StageApply:    r.applyConfig,
	}
}

// proposed reads a configuration run's stored value.
func (r *Runner) proposed(ctx context.Context, id string) (json.RawMessage, error) {
	e, err := r.kv.Get(ctx, valueKey(id))
	if err != nil {
		return nil, fmt.Errorf("pipeline run %s value: %w", id, err)
	}
	return e.Value, nil
}

// validateConfig checks the proposed value with its target, stores it in
// canonical form and computes what the change adds and removes.
func (r *Runner) validateConfig(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	c := rec.Run.Config
	t, err := r.configTarget(c.Target)
	if err != nil {
		return outcome{state: api.StageFailed, reason: err.Error()}, nil
	}
	raw, err := r.proposed(ctx, rec.Run.ID)
	if err != nil {
		return outcome{}, err
	}
	v, err := t.Check(ctx, c.Name, raw)
	if err != nil {
		var p *api.Problem
		if errors.As(err, &p) {
			reason := p.Detail
			if p.Field != "" {
				reason = "field " + p.Field + ": " + reason
			}
			return outcome{state: api.StageFailed, reason: "the value is not valid: " + reason}, nil
		}
		return outcome{}, err
	}
	cur, _, ok, err := t.Current(ctx, c.Name)
	if err != nil {
		return outcome{}, err
	}
	if _, err := r.kv.Put(ctx, valueKey(rec.Run.ID), v.Value); err != nil {
		return outcome{}, fmt.Errorf("store canonical value: %w", err)
	}
	var was []string
	if ok {
		was = cur.Items
	}
	adds, removes := setDiff(was, v.Items)
	digest := digestOf(v.Value)
	summary := fmt.Sprintf("%s: %d added, %d removed", targetName(c), len(adds), len(removes))
	if digest == c.Parent {
		summary = targetName(c) + ": the value in force already"
	}
	lg.printf("%s", summary)
	if len(adds) > 0 {
		lg.printf("adds %v", adds)
	}
	return outcome{state: api.StagePassed, apply: func(rec *record) {
		rc := rec.Run.Config
		rc.Digest, rc.Adds, rc.Removes, rc.Summary = digest, adds, removes, summary
		rec.Run.Bundle = digest
	}}, nil
}

// recordConfig appends the run's chain to the ledger: config → policy →
// approval (when reviewed), each naming the one before.
func (r *Runner) recordConfig(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	run := rec.Run
	c := run.Config
	entries := []kindEntry{{EntryConfig, ledger.Entry{Type: ledger.TypeConfig, Config: &ledger.ConfigChange{Target: c.Target, Name: c.Name,
		Digest: ledger.Digest(c.Digest), ParentDigest: ledger.Digest(c.Parent), Author: runAuthor(run), Summary: clipText(c.Summary, ledger.MaxText-8)}}}}
	return r.appendChain(ctx, run.ID, append(entries, decisionEntries(run)...), lg)
}

// EntryConfig is the ledger entry kind of a configuration run's change.
const EntryConfig = "config"

// applyConfig puts the proposed value in force, exactly once: when the
// target already holds it (a resumed run whose apply had taken effect
// before the node died) the stage passes without applying again; when the
// target holds neither the value the run was made against nor the new one
// (changed meanwhile), the run fails and changes nothing.
func (r *Runner) applyConfig(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	rec, _, err := r.load(ctx, rec.Run.ID)
	if err != nil {
		return outcome{}, err
	}
	if rec.Run.CancelRequested {
		return outcome{}, errCancelRequested
	}
	c := rec.Run.Config
	t, err := r.configTarget(c.Target)
	if err != nil {
		return outcome{state: api.StageFailed, reason: err.Error()}, nil
	}
	cur, _, ok, err := t.Current(ctx, c.Name)
	if err != nil {
		return outcome{}, err
	}
	now := ""
	if ok {
		now = digestOf(cur.Value)
	}
	switch now {
	case c.Digest:
		lg.printf("%s holds the new value", targetName(c))
		return outcome{state: api.StagePassed, reason: "in force"}, nil
	case c.Parent:
	default:
		return outcome{state: api.StageFailed, reason: fmt.Sprintf("%s changed since this run was made (it was %s, it is %s); nothing was applied: make the change again",
			targetName(c), orNone(short(c.Parent)), orNone(short(now)))}, nil
	}
	v, err := r.proposed(ctx, rec.Run.ID)
	if err != nil {
		return outcome{}, err
	}
	if err := t.Apply(ctx, c.Name, v, rec.Run.Principal.ID); err != nil {
		var p *api.Problem
		if errors.As(err, &p) {
			return outcome{state: api.StageFailed, reason: p.Error()}, nil
		}
		return outcome{}, err
	}
	lg.printf("%s applied", targetName(c))
	return outcome{state: api.StagePassed, reason: "applied"}, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// configDiff is a configuration run's change as one unified diff of the
// value in force against the proposed one.
func (r *Runner) configDiff(ctx context.Context, run api.PipelineRun) (api.PipelineDiff, error) {
	c := run.Config
	d := api.PipelineDiff{Run: run.ID, From: c.Parent, To: c.Digest}
	t, err := r.configTarget(c.Target)
	if err != nil {
		return d, err
	}
	raw, err := r.proposed(ctx, run.ID)
	if err != nil {
		return d, err
	}
	next, err := t.Check(ctx, c.Name, raw)
	if err != nil {
		return d, err
	}
	var old string
	if e, err := r.kv.Get(ctx, parentKey(run.ID)); err == nil {
		old = string(e.Value)
	}
	fd := api.PipelineFileDiff{Path: targetName(c), Status: api.DiffModified}
	if c.Parent == "" {
		fd.Status = api.DiffAdded
	}
	fd.Diff = textdiff.Unified("a/"+c.Target, "b/"+c.Target, old, next.Text, textdiff.Options{})
	d.Files = []api.PipelineFileDiff{fd}
	return d, nil
}

// ChangeConfig submits s and waits for its run at most wait (0: not at
// all): the run as it stands — passed (the change is in force), waiting
// for review, or still going — or, when it failed or was cancelled, a
// pipeline-failed problem naming the stage and reason (with the run as
// its instance). A refused submission is its problem, and no run.
func (r *Runner) ChangeConfig(ctx context.Context, s ConfigSubmission, wait time.Duration) (api.PipelineRun, error) {
	run, err := r.SubmitConfig(ctx, s)
	if err != nil {
		return api.PipelineRun{}, err
	}
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		got, err := r.Wait(wctx, run.ID)
		cancel()
		switch {
		case err == nil, errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && got.ID != "":
			run = got
		case ctx.Err() != nil:
			return run, ctx.Err()
		}
	}
	if run.State == api.RunFailed || run.State == api.RunCancelled {
		stage, reason := FailedStage(run)
		p := api.Errorf(api.KindPipelineFailed, "the change of %s stopped at its %s stage: %s; nothing was changed (agentcloud pipeline show %s)",
			targetName(run.Config), stage, reason, run.ID)
		p.Instance = "/v1/pipeline/runs/" + run.ID
		return run, p
	}
	return run, nil
}

// FailedStage is the stage a failed run stopped at, and why.
func FailedStage(run api.PipelineRun) (string, string) {
	for _, st := range run.Stages {
		if st.State == api.StageFailed {
			return st.Name, st.Reason
		}
	}
	return run.Stage, run.Error
}
