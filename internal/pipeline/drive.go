package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
)

// outcome is what a stage ended in. apply, if set, records the stage's
// results on the newest record of the run (it may run more than once, on
// compare-and-set conflicts, so it only assigns).
type outcome struct {
	state  string // StagePassed, StageFailed, StageWaiting or StageSkipped
	reason string
	apply  func(*record)
}

// stageFunc runs one stage of a run.
type stageFunc func(ctx context.Context, rec record, lg *stageLog) (outcome, error)

func (r *Runner) stageFuncs() map[string]stageFunc {
	return map[string]stageFunc{
		api.StageValidate: r.validate,
		api.StageBuild:    r.build,
		api.StageTest:     r.test,
		api.StageGate:     r.gate,
		api.StageReview:   r.reviewStage,
		api.StageSign:     r.sign,
		api.StageRecord:   r.record,
		api.StageRollout:  r.rollout,
	}
}

// stageLog is a stage's bounded log: lines go to the run's event log until
// the stage's limit, the rest is counted.
type stageLog struct {
	r       *Runner
	ctx     context.Context
	run     string
	stage   string
	limit   int
	bytes   int64
	dropped int64
}

// printf logs one line of the stage.
func (l *stageLog) printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.write(msg)
}

func (l *stageLog) write(msg string) {
	if int(l.bytes)+len(msg) > l.limit {
		room := l.limit - int(l.bytes)
		if room <= 0 {
			l.dropped += int64(len(msg))
			return
		}
		cut := room
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		l.dropped += int64(len(msg) - cut)
		msg = msg[:cut]
	}
	l.bytes += int64(len(msg))
	l.r.emit(l.ctx, l.run, api.EventLog, l.stage, "", msg)
}

// drive works on run id until it ends, waits for review, or ctx ends.
func (r *Runner) drive(ctx context.Context, id string) {
	bg := context.WithoutCancel(ctx)
	funcs := r.stageFuncs()
	for {
		if errors.Is(context.Cause(ctx), errClosing) {
			return
		}
		rec, _, err := r.load(bg, id)
		if err != nil {
			r.log.Error("pipeline run unreadable", "run", id, "err", err)
			return
		}
		run := rec.Run
		if run.Terminal() {
			r.unclaim(bg, claimOf(run), id)
			return
		}
		switch run.Kind {
		case api.RunKindConfig:
			funcs = r.configStageFuncs()
		case api.RunKindPreview:
			funcs = r.previewStageFuncs()
		}
		next := nextStage(run)
		if next < 0 {
			r.finish(bg, id, api.RunPassed, "")
			return
		}
		if run.CancelRequested {
			r.finish(bg, id, api.RunCancelled, run.Error)
			return
		}
		name := run.Stages[next].Name
		fresh := run.Stages[next].State != api.StageWaiting
		if fresh || run.State != api.RunWaiting {
			rec, err = r.update(bg, id, func(rec *record) error {
				st := &rec.Run.Stages[next]
				if st.State != api.StageWaiting {
					st.State = api.StageRunning
					st.Attempts++
					if st.Started.IsZero() {
						st.Started = r.now().UTC()
					}
					rec.Run.State = api.RunRunning
				}
				rec.Run.Stage = name
				return nil
			})
			if err != nil {
				r.log.Error("pipeline run not updated", "run", id, "err", err)
				return
			}
			if fresh {
				r.emit(bg, id, api.EventStage, name, api.StageRunning, "")
			}
		}
		lg := &stageLog{r: r, ctx: bg, run: id, stage: name, limit: r.cfg.MaxStageLog,
			bytes: rec.Run.Stages[next].LogBytes, dropped: rec.Run.Stages[next].LogDropped}
		t0 := time.Now()
		out, err := funcs[name](ctx, rec, lg)
		r.met.stageRan(name, stageResult(out, err), time.Since(t0))
		if err != nil {
			cause := context.Cause(ctx)
			switch {
			case errors.Is(cause, errClosing):
				return // resumes at the next Start
			case errors.Is(cause, errCancelRequested), errors.Is(err, errCancelRequested):
				continue // the loop ends the run cancelled
			}
			out = outcome{state: api.StageFailed, reason: err.Error()}
		}
		out.reason = clipText(out.reason, 4096)
		if err := r.recordOutcome(bg, id, next, out, lg); err != nil {
			r.log.Error("pipeline run not updated", "run", id, "err", err)
			return
		}
		r.emit(bg, id, api.EventStage, name, out.state, out.reason)
		switch out.state {
		case api.StageFailed:
			r.finish(bg, id, api.RunFailed, "")
			return
		case api.StageWaiting:
			return
		}
	}
}

// nextStage is the index of the first stage that has not passed or been
// skipped, or -1 when every stage has.
func nextStage(run api.PipelineRun) int {
	for i, st := range run.Stages {
		if st.State != api.StagePassed && st.State != api.StageSkipped {
			return i
		}
	}
	return -1
}

// recordOutcome stores what stage next of run id came to.
func (r *Runner) recordOutcome(ctx context.Context, id string, next int, out outcome, lg *stageLog) error {
	_, err := r.update(ctx, id, func(rec *record) error {
		st := &rec.Run.Stages[next]
		st.State, st.Reason = out.state, out.reason
		st.LogBytes, st.LogDropped = lg.bytes, lg.dropped
		if out.state != api.StageWaiting {
			st.Finished = r.now().UTC()
			if !st.Started.IsZero() {
				st.DurationMs = st.Finished.Sub(st.Started).Milliseconds()
			}
		}
		if out.apply != nil {
			out.apply(rec)
		}
		switch out.state {
		case api.StageWaiting:
			rec.Run.State = api.RunWaiting
		case api.StageFailed:
			rec.Run.Error = fmt.Sprintf("%s: %s", st.Name, out.reason)
		}
		return nil
	})
	return err
}

// finish ends run id in state (passed, failed or cancelled): the stages
// not done are skipped (the one running or waiting is cancelled when the
// run is), the agent's slot is freed.
func (r *Runner) finish(ctx context.Context, id, state, reason string) {
	ended := false // by this call (the metrics count each run once)
	rec, err := r.update(ctx, id, func(rec *record) error {
		ended = false
		if rec.Run.Terminal() {
			return nil
		}
		ended = true
		now := r.now().UTC()
		for i := range rec.Run.Stages {
			st := &rec.Run.Stages[i]
			switch st.State {
			case api.StagePassed, api.StageSkipped, api.StageFailed:
			case api.StageRunning, api.StageWaiting:
				if state == api.RunCancelled {
					st.State, st.Finished = api.StageCancelled, now
				}
			default:
				st.State = api.StageSkipped
			}
		}
		rec.Run.State, rec.Run.Finished = state, now
		if reason != "" {
			rec.Run.Error = reason
		}
		if state == api.RunPassed {
			rec.Run.Error = ""
		}
		return nil
	})
	if err != nil {
		r.log.Error("pipeline run not finished", "run", id, "err", err)
		return
	}
	r.unclaim(ctx, claimOf(rec.Run), id)
	if ended {
		r.met.runEnded(rec.Run.Kind, state)
	}
	r.emit(ctx, id, api.EventRun, "", state, rec.Run.Error)
	r.log.Info("pipeline run ended", "run", id, "agent", rec.Run.Agent, "state", state, "error", rec.Run.Error)
}
