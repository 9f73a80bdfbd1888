package pipeline

import (
	"context"
	"errors"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/ledger"
)

// A preview run (api.RunKindPreview, what agentcloud dev submits) goes
// through the same validate, build, test, policy and review stages as a
// deploy, on the same code: the preview runs the agent's code with its
// manifest's capabilities, so a capability new against the version it
// replaces (the preview, else production's) waits for a review as a
// release would. Its record stage appends change (marked preview) ← test
// ← policy ← approval to the ledger, and its last stage makes the version
// the agent's preview instead of signing and rolling it out: nothing
// reaches production traffic. It holds a claim of its own, so a preview
// never waits for a release in progress, nor a release for a preview.

// Previews sets and reads agents' preview versions (the session
// manager's).
type Previews interface {
	SetPreview(ctx context.Context, agent, digest, owner string) error
	PreviewVersion(ctx context.Context, agent string) (digest string, ok bool, err error)
}

// previewClaim is what a preview run of agent holds while it is active.
func previewClaim(agent string) string { return "preview:" + agent }

// parentOf is the version a submission replaces (the current version, or
// for a preview the preview version), the run's kind and its stages; a
// submission of the version it would replace is a conflict.
func (r *Runner) parentOf(ctx context.Context, agent string, s Submission) (parent, kind string, stages []string, err error) {
	if !s.Preview {
		parent, _, err = r.cfg.Versions.CurrentVersion(ctx, agent)
		if err != nil {
			return "", "", nil, err
		}
		if parent == s.Bundle.Digest {
			return "", "", nil, api.Errorf(api.KindConflict, "version %s is already the current version of agent %s", short(parent), agent)
		}
		return parent, "", api.PipelineStages(), nil
	}
	if r.cfg.Previews == nil {
		return "", "", nil, api.Errorf(api.KindUnavailable, "this node does not run previews")
	}
	parent, ok, err := r.cfg.Previews.PreviewVersion(ctx, agent)
	if err != nil {
		return "", "", nil, err
	}
	if parent == s.Bundle.Digest {
		return "", "", nil, api.Errorf(api.KindConflict, "version %s is already the preview of agent %s", short(parent), agent)
	}
	if !ok { // the first preview changes production's version
		if parent, _, err = r.cfg.Versions.CurrentVersion(ctx, agent); err != nil {
			return "", "", nil, err
		}
	}
	return parent, api.RunKindPreview, api.PreviewStages(), nil
}

func (r *Runner) previewStageFuncs() map[string]stageFunc {
	return map[string]stageFunc{
		api.StageValidate: r.validate,
		api.StageBuild:    r.build,
		api.StageTest:     r.test,
		api.StageGate:     r.gate,
		api.StageReview:   r.reviewStage,
		api.StageRecord:   r.recordPreview,
		api.StagePreview:  r.applyPreview,
	}
}

// recordPreview appends change (preview) ← test ← policy ← approval to
// the ledger.
func (r *Runner) recordPreview(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	run := rec.Run
	hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	entries := []kindEntry{{EntryChange, ledger.Entry{Type: ledger.TypeChange, Change: &ledger.Change{Agent: run.Agent, Version: hexOf(run.Bundle),
		ParentVersion: hexOf(run.Parent), BundleDigest: ledger.Digest(run.Bundle), Author: runAuthor(run),
		Message: clipText(run.Message, ledger.MaxText-8), Preview: true}}}}
	if t := run.Tests; t != nil {
		tr := &ledger.TestResult{Suite: "pipeline:" + run.ID, Passed: t.Passed, Total: t.Total, Failed: t.Failed, ReportDigest: ledger.Digest(t.Report)}
		entries = append(entries, kindEntry{EntryTest, ledger.Entry{Type: ledger.TypeTest, Test: tr}})
	}
	entries = append(entries, decisionEntries(run)...)
	return r.appendChain(ctx, run.ID, entries, lg)
}

// applyPreview makes the run's version the agent's preview, unless the run
// was cancelled first.
func (r *Runner) applyPreview(ctx context.Context, rec record, lg *stageLog) (outcome, error) {
	rec, _, err := r.load(ctx, rec.Run.ID)
	if err != nil {
		return outcome{}, err
	}
	if rec.Run.CancelRequested {
		return outcome{}, errCancelRequested
	}
	run := rec.Run
	if err := r.cfg.Previews.SetPreview(ctx, run.Agent, run.Bundle, run.Principal.ID); err != nil {
		var p *api.Problem
		if errors.As(err, &p) {
			return outcome{state: api.StageFailed, reason: p.Error()}, nil
		}
		return outcome{}, err
	}
	lg.printf("version %s is the preview (production is unchanged)", short(run.Bundle))
	return outcome{state: api.StagePassed}, nil
}
