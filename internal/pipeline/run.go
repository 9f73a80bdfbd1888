package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// record is what the runs bucket holds for a run: the wire form and what a
// resumed run needs that clients do not see.
type record struct {
	Run api.PipelineRun `json:"run"`
	// EntryTimes are the times the run's ledger entries are stamped with,
	// fixed (and stored) before each append, so a resumed run re-derives
	// the same entry, finds it by hash, and does not append it twice.
	EntryTimes map[string]time.Time `json:"entry_times,omitempty"`
}

// Keys in the runs bucket.
func runKey(id string) string       { return store.Key("run", id) }
func activeKey(agent string) string { return store.Key("active", agent) }
func reportKey(id string) string    { return store.Key("report", id) }
func provKey(id string) string      { return store.Key("prov", id) }

// newRunID makes "run-" and 16 lowercase base32 characters (80 random bits).
func newRunID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "run-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// checkRunID is the api.IDRun rule as a 400 problem.
func checkRunID(id string) error {
	if p := api.CheckID("run", api.IDRun, id); p != nil {
		return p
	}
	return nil
}

// load reads a run's record and revision.
func (r *Runner) load(ctx context.Context, id string) (record, uint64, error) {
	if err := checkRunID(id); err != nil {
		return record{}, 0, err
	}
	e, err := r.kv.Get(ctx, runKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return record{}, 0, api.Errorf(api.KindNotFound, "pipeline run %s not found", id)
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("pipeline run %s: %w", id, err)
	}
	var rec record
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return record{}, 0, fmt.Errorf("pipeline run %s record: %w", id, err)
	}
	return rec, e.Revision, nil
}

// maxUpdateRetries bounds a compare-and-set loop on one run.
const maxUpdateRetries = 64

// update applies fn to the newest record of run id and writes it with a
// compare-and-set, rereading and reapplying on a conflict. fn may refuse
// by returning an error (nothing is written).
func (r *Runner) update(ctx context.Context, id string, fn func(*record) error) (record, error) {
	for range maxUpdateRetries {
		rec, rev, err := r.load(ctx, id)
		if err != nil {
			return record{}, err
		}
		if err := fn(&rec); err != nil {
			return record{}, err
		}
		rec.Run.Updated = r.now().UTC()
		b, err := json.Marshal(rec)
		if err != nil {
			return record{}, fmt.Errorf("pipeline run %s: %w", id, err)
		}
		_, err = r.kv.Update(ctx, runKey(id), b, rev)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return record{}, fmt.Errorf("pipeline run %s: %w", id, err)
		}
		return rec, nil
	}
	return record{}, api.Errorf(api.KindConflict, "pipeline run %s is changing too fast; try again", id)
}

// stage returns the named stage of run.
func stage(run *api.PipelineRun, name string) *api.PipelineStage {
	for i := range run.Stages {
		if run.Stages[i].Name == name {
			return &run.Stages[i]
		}
	}
	return nil
}

// Get returns a run.
func (r *Runner) Get(ctx context.Context, id string) (api.PipelineRun, error) {
	rec, _, err := r.load(ctx, id)
	return rec.Run, err
}

// MaxList caps List.
const MaxList = 1000

// List returns runs, newest first, of agent ("" for every agent), at most
// limit (<= 0 or over MaxList: MaxList).
func (r *Runner) List(ctx context.Context, agent string, limit int) ([]api.PipelineRun, error) {
	if agent != "" {
		if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
			return nil, p
		}
	}
	if limit <= 0 || limit > MaxList {
		limit = MaxList
	}
	keys, err := r.kv.Keys(ctx, "run")
	if err != nil {
		return nil, fmt.Errorf("pipeline runs: %w", err)
	}
	out := []api.PipelineRun{}
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err != nil || len(parts) != 2 {
			continue
		}
		rec, _, err := r.load(ctx, parts[1])
		if err != nil {
			continue
		}
		if agent == "" || rec.Run.Agent == agent {
			out = append(out, rec.Run)
		}
	}
	slices.SortFunc(out, func(a, b api.PipelineRun) int { return b.Created.Compare(a.Created) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// eventSubject is the event log subject of a run.
func eventSubject(id string) string { return "pipeline." + id }

// emit appends an event to the run's log. Progress events are best
// effort: a failure is logged, the run goes on.
func (r *Runner) emit(ctx context.Context, id, typ, stageName, state, msg string) {
	ev := api.PipelineEvent{Run: id, Time: r.now().UTC(), Type: typ, Stage: stageName, State: state, Message: msg}
	b, _ := json.Marshal(ev)
	if _, err := r.events.Append(context.WithoutCancel(ctx), eventSubject(id), b); err != nil {
		r.log.Warn("pipeline event not recorded", "run", id, "err", err)
	}
	r.notify(id)
}

// MaxEvents caps one Events answer.
const MaxEvents = 1000

// Events returns the run's events from sequence from (0 or 1: the first),
// at most limit (<= 0 or over MaxEvents: MaxEvents), and the sequence to
// continue from.
func (r *Runner) Events(ctx context.Context, id string, from uint64, limit int) ([]api.PipelineEvent, uint64, error) {
	if _, _, err := r.load(ctx, id); err != nil {
		return nil, 0, err
	}
	if from == 0 {
		from = 1
	}
	if limit <= 0 || limit > MaxEvents {
		limit = MaxEvents
	}
	recs, err := r.events.Read(ctx, from, limit, eventSubject(id))
	if err != nil {
		return nil, 0, fmt.Errorf("pipeline run %s events: %w", id, err)
	}
	out := make([]api.PipelineEvent, 0, len(recs))
	next := from
	for _, rc := range recs {
		var ev api.PipelineEvent
		if err := json.Unmarshal(rc.Data, &ev); err != nil {
			continue
		}
		ev.Seq = rc.Seq
		out = append(out, ev)
		next = rc.Seq + 1
	}
	return out, next, nil
}

// TestReport returns the full report of a run's test stage.
func (r *Runner) TestReport(ctx context.Context, id string) (api.PipelineTestReport, error) {
	if err := checkRunID(id); err != nil {
		return api.PipelineTestReport{}, err
	}
	e, err := r.kv.Get(ctx, reportKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return api.PipelineTestReport{}, api.Errorf(api.KindNotFound, "pipeline run %s has no test report", id)
	}
	if err != nil {
		return api.PipelineTestReport{}, err
	}
	var rep api.PipelineTestReport
	if err := json.Unmarshal(e.Value, &rep); err != nil {
		return api.PipelineTestReport{}, fmt.Errorf("test report %s: %w", id, err)
	}
	return rep, nil
}

// Provenance returns the signed provenance of a released run.
func (r *Runner) Provenance(ctx context.Context, id string) (api.PipelineProvenance, error) {
	rec, _, err := r.load(ctx, id)
	if err != nil {
		return api.PipelineProvenance{}, err
	}
	e, err := r.kv.Get(ctx, provKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return api.PipelineProvenance{}, api.Errorf(api.KindNotFound, "pipeline run %s has no provenance (it was not signed)", id)
	}
	if err != nil {
		return api.PipelineProvenance{}, err
	}
	return api.PipelineProvenance{Run: id, Subject: rec.Run.Bundle, Digest: rec.Run.Provenance, Envelope: e.Value,
		PublicKey: string(r.cfg.Signer.PublicPEM()), KeyID: r.cfg.Signer.KeyID()}, nil
}

// Diff returns the file-by-file diff of a run's version against its parent.
func (r *Runner) Diff(ctx context.Context, id string) (api.PipelineDiff, error) {
	rec, _, err := r.load(ctx, id)
	if err != nil {
		return api.PipelineDiff{}, err
	}
	run := rec.Run
	if run.Config != nil {
		return r.configDiff(ctx, run)
	}
	next, err := r.versionBundle(ctx, run.Agent, run.Bundle)
	if err != nil {
		return api.PipelineDiff{}, err
	}
	d := api.PipelineDiff{Run: id, Agent: run.Agent, From: run.Parent, To: run.Bundle}
	if run.Parent != "" {
		parent, err := r.versionBundle(ctx, run.Agent, run.Parent)
		if err != nil {
			return api.PipelineDiff{}, err
		}
		d.Files = FileDiffs(parent, next)
	} else {
		d.Files = FileDiffs(nil, next)
	}
	return d, nil
}

// Active returns agent's run in progress, if any (ok false when none).
func (r *Runner) Active(ctx context.Context, agent string) (api.PipelineRun, bool, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return api.PipelineRun{}, false, p
	}
	e, err := r.kv.Get(ctx, activeKey(agent))
	if errors.Is(err, store.ErrNotFound) {
		return api.PipelineRun{}, false, nil
	}
	if err != nil {
		return api.PipelineRun{}, false, fmt.Errorf("pipeline active run of %s: %w", agent, err)
	}
	id, _ := parseClaim(e.Value)
	if id == "" {
		return api.PipelineRun{}, false, nil
	}
	rec, _, err := r.load(ctx, id)
	if api.IsKind(err, api.KindNotFound) {
		return api.PipelineRun{}, false, nil
	}
	if err != nil {
		return api.PipelineRun{}, false, err
	}
	return rec.Run, !rec.Run.Terminal(), nil
}
