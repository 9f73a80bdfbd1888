package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline/provenance"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Test file limits the validate stage checks.
const (
	MaxTestFiles     = 64
	MaxTestFileBytes = 256 << 10
)

// TestFiles returns the bundle's tests/*.test.js files, sorted.
func TestFiles(b *bundle.Bundle) []string {
	var out []string
	for _, p := range b.Paths() {
		if IsTestFile(p) {
			out = append(out, p)
		}
	}
	return out
}

// IsTestFile reports whether p is a tests/*.test.js file.
func IsTestFile(p string) bool {
	return path.Dir(p) == "tests" && strings.HasSuffix(p, ".test.js")
}

// validate loads the version and its parent, checks the tests are within
// the limits, and computes the change.
func (r *Runner) validate(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	run := rec.Run
	b, err := r.versionBundle(ctx, run.Agent, run.Bundle)
	if err != nil {
		return outcome{}, err
	}
	if b.Manifest.Name != run.Agent {
		return outcome{state: api.StageFailed, reason: fmt.Sprintf("the manifest names agent %q, the run is for %q", b.Manifest.Name, run.Agent)}, nil
	}
	tests := TestFiles(b)
	if len(tests) > MaxTestFiles {
		return outcome{state: api.StageFailed, reason: fmt.Sprintf("%d test files: the limit is %d", len(tests), MaxTestFiles)}, nil
	}
	for _, t := range tests {
		if n := len(b.Files[t]); n > MaxTestFileBytes {
			return outcome{state: api.StageFailed, reason: fmt.Sprintf("test file %s is %d bytes: the limit is %d", t, n, MaxTestFileBytes)}, nil
		}
	}
	var parent *bundle.Bundle
	if run.Parent != "" {
		if parent, err = r.versionBundle(ctx, run.Agent, run.Parent); err != nil {
			return outcome{}, fmt.Errorf("parent version: %w", err)
		}
	}
	ch := Change(parent, b)
	lg.printf("%d files (%d added, %d changed, %d removed), %d test files", len(b.Files), ch.FilesAdded, ch.FilesChanged, ch.FilesRemoved, len(tests))
	if len(ch.NewHosts)+len(ch.NewSecrets)+len(ch.NewTools) > 0 {
		lg.printf("new capabilities: hosts %v, secrets %v, tools %v", ch.NewHosts, ch.NewSecrets, ch.NewTools)
	}
	return outcome{state: api.StagePassed, apply: func(rec *record) { rec.Run.Change = ch }}, nil
}

// storeBlip reports whether err is the store not answering right now.
func storeBlip(err error) bool {
	return api.IsKind(err, api.KindUnavailable) || errors.Is(err, store.ErrUnavailable)
}

// blipDetail says what a store blip was without the store's own error
// text, which stays in the server's logs.
func blipDetail(err error) string {
	if api.IsKind(err, api.KindUnavailable) {
		return api.AsProblem(err).Detail
	}
	return "the store cannot answer right now"
}

// buildTries is how many times the build stage tries a build the store
// could not serve before the run fails (about 8 s of waits by default).
const buildTries = 6

// build initialises the version and stores its template. A build the store
// could not serve (a 503, or a store error that says so) is tried again: a
// retry loads a template that was stored and builds only one the store
// does not hold, and a store that is back in seconds should not fail the
// run.
func (r *Runner) build(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	tmpl, err := r.cfg.Versions.BuildVersion(ctx, rec.Run.Agent, rec.Run.Bundle)
	for try, wait := 1, r.cfg.BuildRetry; try < buildTries && storeBlip(err); try, wait = try+1, 2*wait {
		lg.printf("the store could not serve the build (%s); trying again in %v", blipDetail(err), wait)
		select {
		case <-ctx.Done():
			return outcome{}, context.Cause(ctx)
		case <-time.After(wait):
		}
		tmpl, err = r.cfg.Versions.BuildVersion(ctx, rec.Run.Agent, rec.Run.Bundle)
	}
	if err != nil && ctx.Err() != nil {
		return outcome{}, context.Cause(ctx) // cancelled or closing, not failed
	}
	if storeBlip(err) {
		r.log.Warn("pipeline build: the store could not serve it", "run", rec.Run.ID, "tries", buildTries, "err", err)
		return outcome{state: api.StageFailed, reason: fmt.Sprintf("the store could not serve the build in %d tries (%s)", buildTries, blipDetail(err))}, nil
	}
	if err != nil {
		var p *api.Problem
		if errors.As(err, &p) {
			return outcome{state: api.StageFailed, reason: p.Error()}, nil
		}
		return outcome{}, err
	}
	if tmpl != "" {
		lg.printf("template %s", short(tmpl))
	}
	return outcome{state: api.StagePassed, apply: func(rec *record) {
		rec.Run.Build = &api.PipelineBuild{Version: rec.Run.Bundle, Template: tmpl}
	}}, nil
}

// errTestTimeout is the cause when the test stage runs out of time.
var errTestTimeout = errors.New("test stage time limit")

// test runs the version's tests under the stage's time limit.
func (r *Runner) test(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	if r.cfg.Tester == nil {
		return outcome{state: api.StageSkipped, reason: "no tester on this node",
			apply: func(rec *record) { rec.Run.Tests = &api.PipelineTestSummary{Passed: true} }}, nil
	}
	run := rec.Run
	b, err := r.versionBundle(ctx, run.Agent, run.Bundle)
	if err != nil {
		return outcome{}, err
	}
	tctx, cancel := context.WithTimeoutCause(ctx, r.cfg.TestTimeout, errTestTimeout)
	defer cancel()
	rep, err := r.cfg.Tester.Test(tctx, TestInput{Run: run.ID, Agent: run.Agent, Version: run.Bundle, Bundle: b})
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, err
		}
		if errors.Is(context.Cause(tctx), errTestTimeout) {
			return outcome{state: api.StageFailed, reason: fmt.Sprintf("the tests did not finish within %s (the test stage's time limit)", r.cfg.TestTimeout),
				apply: func(rec *record) { rec.Run.Tests = &api.PipelineTestSummary{Passed: false} }}, nil
		}
		return outcome{state: api.StageFailed, reason: "tests could not run: " + err.Error(),
			apply: func(rec *record) { rec.Run.Tests = &api.PipelineTestSummary{Passed: false} }}, nil
	}
	sum := Summarize(rep)
	repJSON, err := json.Marshal(rep)
	if err != nil {
		return outcome{}, err
	}
	if _, err := r.kv.Put(ctx, reportKey(run.ID), repJSON); err != nil {
		return outcome{}, fmt.Errorf("store test report: %w", err)
	}
	sum.Report = digestOf(repJSON)
	for _, f := range rep.Files {
		for _, c := range f.Tests {
			lg.printf("%s %s › %s (%d ms)", c.Result, f.File, c.Name, c.DurationMs)
		}
		if f.Error != "" {
			lg.printf("%s did not load: %s", f.File, f.Error)
		}
	}
	if rep.Command != nil {
		lg.printf("test command %q exited %d", rep.Command.Command, rep.Command.ExitCode)
	}
	o := outcome{state: api.StagePassed, reason: fmt.Sprintf("%d tests passed", sum.Total-sum.Failed-sum.Skipped),
		apply: func(rec *record) { rec.Run.Tests = &sum }}
	if !sum.Passed {
		o.state, o.reason = api.StageFailed, failureReason(sum)
	}
	return o, nil
}

// Summarize reduces a test report to the run's summary.
func Summarize(rep api.PipelineTestReport) api.PipelineTestSummary {
	s := api.PipelineTestSummary{Passed: rep.Passed, Command: rep.Command}
	for _, f := range rep.Files {
		s.Files = append(s.Files, f.File)
		if f.Error != "" {
			s.Failed++
			s.Total++
			if s.Failure == nil {
				s.Failure = &api.PipelineTestFailure{File: f.File, Name: "(load)", Error: f.Error}
			}
		}
		for _, c := range f.Tests {
			s.Total++
			switch c.Result {
			case api.TestFailed:
				s.Failed++
				if s.Failure == nil {
					s.Failure = &api.PipelineTestFailure{File: f.File, Name: c.Name, Error: c.Error, Output: c.Output}
				}
			case api.TestSkipped:
				s.Skipped++
			}
		}
	}
	if s.Failed > 0 || (rep.Command != nil && rep.Command.ExitCode != 0) {
		s.Passed = false
	}
	return s
}

func failureReason(s api.PipelineTestSummary) string {
	if f := s.Failure; f != nil {
		msg := fmt.Sprintf("test %q in %s failed: %s", f.Name, f.File, f.Error)
		if f.Output != "" {
			msg += "\noutput:\n" + clipText(f.Output, 2048)
		}
		return msg
	}
	if c := s.Command; c != nil && c.ExitCode != 0 {
		if c.TimedOut {
			return fmt.Sprintf("test command %q timed out", c.Command)
		}
		return fmt.Sprintf("test command %q exited %d:\n%s", c.Command, c.ExitCode, clipText(c.Output, 2048))
	}
	return "the tests failed"
}

// gate asks the policy whether the change may be released.
func (r *Runner) gate(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	d, err := r.cfg.Gate.Decide(ctx, rec.Run)
	if err != nil {
		return outcome{}, err
	}
	lg.printf("agent.release: %s (%s)", d.Result, strings.Join(d.Reasons, "; "))
	apply := func(rec *record) { rec.Run.Decision = &d }
	switch d.Result {
	case api.GateAllow:
		return outcome{state: api.StagePassed, reason: "released by policy", apply: apply}, nil
	case api.GateReview:
		return outcome{state: api.StagePassed, reason: "needs review: " + strings.Join(d.Reasons, "; "), apply: apply}, nil
	default:
		return outcome{state: api.StageFailed, reason: "policy denies the release: " + strings.Join(d.Reasons, "; "), apply: apply}, nil
	}
}

// ReleaseAction is the Cedar action of a release and of its approvals.
const ReleaseAction = "agent.release"

// reviewStage waits for a person's decision when the policy asked for one.
func (r *Runner) reviewStage(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	run := rec.Run
	if run.Decision == nil {
		return outcome{}, errors.New("no policy decision recorded")
	}
	if run.Decision.Result == api.GateAllow {
		return outcome{state: api.StageSkipped, reason: "the policy released the change without review",
			apply: func(rec *record) { rec.Run.Review = &api.PipelineReview{Required: false} }}, nil
	}
	rv := run.Review
	if rv != nil && rv.Decision != "" {
		return decided(rv.Decision, rv.By), nil
	}
	if rv == nil || rv.Approval == "" {
		what, action := "release of "+run.Agent+" "+short(run.Bundle), ReleaseAction
		if c := run.Config; c != nil {
			what, action = "change of "+targetName(c), ActionConfigChange
		} else if run.Kind == api.RunKindPreview {
			what = "preview of " + run.Agent + " " + short(run.Bundle)
		}
		a, _, err := r.cfg.Reviews.Request(ctx, api.Approval{Principal: run.Principal.ID, Action: action,
			Resource: "pipeline-run/" + run.ID, Reason: what + ": " + strings.Join(run.Decision.Reasons, "; ")})
		if err != nil {
			return outcome{}, fmt.Errorf("request review: %w", err)
		}
		lg.printf("waiting for review (approval %s): agentcloud pipeline approve %s", a.ID, run.ID)
		return outcome{state: api.StageWaiting, reason: "waiting for review",
			apply: func(rec *record) { rec.Run.Review = &api.PipelineReview{Required: true, Approval: a.ID} }}, nil
	}
	// Resolved through the approvals API rather than Approve/Reject?
	a, err := r.cfg.Reviews.Get(ctx, rv.Approval)
	if err != nil {
		return outcome{}, fmt.Errorf("review approval %s: %w", rv.Approval, err)
	}
	var decision string
	switch a.Status {
	case approval.Approved, approval.Used:
		decision = api.ReviewApproved
	case approval.Denied:
		decision = api.ReviewRejected
	default:
		return outcome{state: api.StageWaiting, reason: "waiting for review"}, nil
	}
	if a.ResolvedBy == run.Principal.ID {
		return outcome{state: api.StageFailed, reason: a.ResolvedBy + " resolved the review of their own change"}, nil
	}
	o := decided(decision, a.ResolvedBy)
	o.apply = func(rec *record) {
		rec.Run.Review.Decision, rec.Run.Review.By, rec.Run.Review.At = decision, a.ResolvedBy, a.ResolvedAt
	}
	return o, nil
}

func decided(decision, by string) outcome {
	if decision == api.ReviewApproved {
		return outcome{state: api.StagePassed, reason: "approved by " + by}
	}
	return outcome{state: api.StageFailed, reason: "rejected by " + by}
}

// provenanceParams is what a run's provenance records. It depends only on
// the run record, so a resumed sign stage signs the same statement.
func (r *Runner) provenanceParams(run api.PipelineRun) provenance.Params {
	p := provenance.Params{Agent: run.Agent, Version: run.Bundle, Parent: run.Parent, Message: run.Message, Run: run.ID,
		Author:  provenance.Author{ID: run.Principal.ID, Kind: run.Principal.Kind, Labels: copyLabels(run.Principal.Labels)},
		Builder: r.cfg.Builder, BuilderVersion: r.cfg.BuilderVersion, Started: run.Created}
	if st := stage(&run, api.StageReview); st != nil && !st.Finished.IsZero() {
		p.Finished = st.Finished
	} else if st := stage(&run, api.StageGate); st != nil {
		p.Finished = st.Finished
	}
	if run.Build != nil {
		p.Template = run.Build.Template
	}
	if t := run.Tests; t != nil {
		p.Tests = provenance.Tests{Passed: t.Passed, Total: t.Total, Failed: t.Failed, Report: t.Report}
	}
	if d := run.Decision; d != nil {
		p.Policy = provenance.Policy{Result: d.Result, Reasons: d.Reasons, PolicySetDigest: d.PolicySetDigest, InputDigest: d.InputDigest}
	}
	if rv := run.Review; rv != nil && rv.Decision != "" {
		p.Review = &provenance.Review{By: rv.By, Decision: rv.Decision, At: rv.At}
	}
	return p
}

// sign signs the release's provenance and keeps the envelope.
func (r *Runner) sign(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	env, digest, err := r.cfg.Signer.Sign(ctx, r.provenanceParams(rec.Run))
	if err != nil {
		return outcome{}, err
	}
	if _, err := r.kv.Put(ctx, provKey(rec.Run.ID), env); err != nil {
		return outcome{}, fmt.Errorf("store provenance: %w", err)
	}
	lg.printf("provenance %s signed by key %s", short(digest), short(r.cfg.Signer.KeyID()))
	return outcome{state: api.StagePassed, apply: func(rec *record) { rec.Run.Provenance = digest }}, nil
}

// Ledger entry kinds a run records, in chain order.
const (
	EntryChange     = "change"
	EntryTest       = "test"
	EntryPolicy     = "policy"
	EntryApproval   = "approval"
	EntryProvenance = "provenance"
)

// record appends the run's chain to the ledger: change → test → policy →
// approval (when reviewed) → provenance, each naming the one before.
func (r *Runner) record(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	run := rec.Run
	hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	entries := []kindEntry{{EntryChange, ledger.Entry{Type: ledger.TypeChange, Change: &ledger.Change{Agent: run.Agent, Version: hexOf(run.Bundle),
		ParentVersion: hexOf(run.Parent), BundleDigest: ledger.Digest(run.Bundle), Author: runAuthor(run), Message: clipText(run.Message, ledger.MaxText-8)}}}}
	if t := run.Tests; t != nil {
		tr := &ledger.TestResult{Suite: "pipeline:" + run.ID, Passed: t.Passed, Total: t.Total, Failed: t.Failed, ReportDigest: ledger.Digest(t.Report)}
		entries = append(entries, kindEntry{EntryTest, ledger.Entry{Type: ledger.TypeTest, Test: tr}})
	}
	entries = append(entries, decisionEntries(run)...)
	entries = append(entries, kindEntry{EntryProvenance, ledger.Entry{Type: ledger.TypeProvenance, Provenance: &ledger.Provenance{
		SubjectDigest: ledger.Digest(run.Bundle), PredicateType: provenance.PredicateType, StatementDigest: ledger.Digest(run.Provenance),
		Builder: r.cfg.Builder}}})
	return r.appendChain(ctx, run.ID, entries, lg)
}

// kindEntry is a ledger entry of a run's chain and its kind (Entry*).
type kindEntry struct {
	kind string
	e    ledger.Entry
}

// runAuthor is the run's principal as the ledger names an author.
func runAuthor(run api.PipelineRun) ledger.Identity {
	author := ledger.Identity{ID: run.Principal.ID, Labels: copyLabels(run.Principal.Labels)}
	if author.Labels == nil {
		author.Labels = map[string]string{}
	}
	author.Labels["principal.kind"] = run.Principal.Kind
	return author
}

// decisionEntries are the run's policy decision and, when it was reviewed,
// its approval.
func decisionEntries(run api.PipelineRun) []kindEntry {
	var entries []kindEntry
	if d := run.Decision; d != nil {
		res := ledger.ResultDeny
		if d.Result == api.GateAllow {
			res = ledger.ResultAllow
		}
		reasons := d.Reasons
		if len(reasons) > ledger.MaxReasons {
			reasons = reasons[:ledger.MaxReasons]
		}
		entries = append(entries, kindEntry{EntryPolicy, ledger.Entry{Type: ledger.TypePolicy, Policy: &ledger.PolicyDecision{
			PolicySetDigest: ledger.Digest(d.PolicySetDigest), InputDigest: ledger.Digest(d.InputDigest), Result: res, Reasons: reasons}}})
	}
	if rv := run.Review; rv != nil && rv.Decision != "" {
		entries = append(entries, kindEntry{EntryApproval, ledger.Entry{Type: ledger.TypeApproval, Approval: &ledger.Approval{
			Approver: ledger.Identity{ID: rv.By}, Decision: rv.Decision, Comment: clipText(rv.Comment, ledger.MaxText-8)}}})
	}
	return entries
}

// appendChain appends entries in order, each naming the one before, once
// across restarts (appendOnce), and records where they are in the run.
func (r *Runner) appendChain(ctx context.Context, id string, entries []kindEntry, lg *stageLog) (outcome, error) {
	var prev *ledger.Ref
	refs := map[string]api.PipelineLedgerRef{}
	for _, x := range entries {
		e := x.e
		if prev != nil {
			e.Parents = []ledger.Ref{*prev}
		}
		ref, err := r.appendOnce(ctx, id, x.kind, e)
		if err != nil {
			return outcome{}, fmt.Errorf("ledger %s entry: %w", x.kind, err)
		}
		lg.printf("ledger %s entry %d", x.kind, ref.Index)
		refs[x.kind] = api.PipelineLedgerRef{Index: ref.Index, Hash: ref.Hash.String()}
		prev = &ref
	}
	return outcome{state: api.StagePassed, apply: func(rec *record) { rec.Run.Ledger = refs }}, nil
}

// appendOnce appends e for kind to the ledger exactly once across
// restarts: its time is fixed and stored first, so a resumed run encodes
// the same bytes, finds the entry by its hash, and does not append again.
func (r *Runner) appendOnce(ctx context.Context, id, kind string, e ledger.Entry) (ledger.Ref, error) {
	rec, err := r.update(ctx, id, func(rec *record) error {
		if rec.EntryTimes == nil {
			rec.EntryTimes = map[string]time.Time{}
		}
		if _, ok := rec.EntryTimes[kind]; !ok {
			rec.EntryTimes[kind] = r.now().UTC().Round(0)
		}
		return nil
	})
	if err != nil {
		return ledger.Ref{}, err
	}
	e.Time = rec.EntryTimes[kind]
	data, err := e.Encode()
	if err != nil {
		return ledger.Ref{}, err
	}
	h := ledger.LeafHash(data)
	idx, err := r.cfg.Ledger.Lookup(ctx, h)
	if err == nil {
		return ledger.Ref{Index: idx, Hash: h}, nil
	}
	var p *api.Problem
	if !errors.As(err, &p) || p.Kind() != api.KindNotFound {
		return ledger.Ref{}, err
	}
	return r.cfg.Ledger.Append(ctx, e)
}

// rollout hands the released version to the rollout, unless the run was
// cancelled first (then the old version keeps serving).
func (r *Runner) rollout(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	rec, _, err := r.load(ctx, rec.Run.ID)
	if err != nil {
		return outcome{}, err
	}
	if rec.Run.CancelRequested {
		return outcome{}, errCancelRequested
	}
	run := rec.Run
	var pref ledger.Ref
	if ref, ok := run.Ledger[EntryProvenance]; ok {
		h, err := ledger.ParseHash(ref.Hash)
		if err != nil {
			return outcome{}, err
		}
		pref = ledger.Ref{Index: ref.Index, Hash: h}
	}
	err = r.cfg.Rollout.Release(ctx, Release{Run: run.ID, Agent: run.Agent, Version: run.Bundle, Parent: run.Parent,
		Owner: run.Principal.ID, Steps: r.cfg.Steps, Provenance: pref})
	if err != nil {
		var p *api.Problem
		if errors.As(err, &p) {
			return outcome{state: api.StageFailed, reason: p.Error()}, nil
		}
		return outcome{}, err
	}
	lg.printf("version %s released", short(run.Bundle))
	return outcome{state: api.StagePassed}, nil
}
