package rollout

import (
	"context"
	"errors"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// MaxReason bounds a reason given by a person.
const MaxReason = 1024

// checkReason refuses a reason that is too long or holds control
// characters or invalid UTF-8.
func checkReason(s string) error {
	if len(s) > MaxReason {
		return api.FieldErrorf(api.KindValidation, "reason", "reason is %d bytes long; the limit is %d", len(s), MaxReason)
	}
	if !utf8.ValidString(s) {
		return api.FieldErrorf(api.KindValidation, "reason", "reason is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return api.FieldErrorf(api.KindValidation, "reason", "reason holds control character %U; write one line of text", r)
		}
	}
	return nil
}

func noRollout(agent string) error {
	return api.Errorf(api.KindConflict, "agent %s has no rollout running", agent)
}

// Pause holds the rollout at its current share: no step is taken until
// Resume (a failing canary is still rolled back).
func (c *Controller) Pause(ctx context.Context, agent, reason string) (State, error) {
	if err := c.checkAgent(agent, reason); err != nil {
		return State{}, err
	}
	return c.transition(ctx, agent, func(st *State) error {
		if st.Phase == PhasePaused {
			return errNoChange
		}
		if st.Phase != PhaseRunning {
			return noRollout(agent)
		}
		st.Phase, st.Reason = PhasePaused, reason
		return st.record(c.stepEntry(*st, ledger.RolloutPaused, nil))
	})
}

// Resume continues a paused rollout; the step's pause and window start
// again.
func (c *Controller) Resume(ctx context.Context, agent string) (State, error) {
	if err := c.checkAgent(agent, ""); err != nil {
		return State{}, err
	}
	st, err := c.transition(ctx, agent, func(st *State) error {
		if st.Phase == PhaseRunning {
			return errNoChange
		}
		if st.Phase != PhasePaused {
			return noRollout(agent)
		}
		st.Phase, st.Reason, st.StepStarted = PhaseRunning, "", c.cfg.Now().UTC()
		return st.record(c.stepEntry(*st, ledger.RolloutResumed, nil))
	})
	if err == nil {
		c.cfg.Meter.Reset(agent)
	}
	return st, err
}

// Promote takes the next step now, whatever the pause and the analysis
// say (the figures so far are recorded); from the last step it completes
// the rollout.
func (c *Controller) Promote(ctx context.Context, agent, reason string) (State, error) {
	if err := c.checkAgent(agent, reason); err != nil {
		return State{}, err
	}
	var ended bool
	st, err := c.transition(ctx, agent, func(st *State) error {
		if !st.Phase.Active() {
			return noRollout(agent)
		}
		a, _ := c.analyse(*st, c.cfg.Now())
		ended = st.Step == len(st.Steps)-1
		if reason == "" {
			reason = "promoted by hand"
		}
		return c.promote(st, a, reason)
	})
	if err == nil && ended {
		c.cfg.Meter.Forget(agent)
		c.prune(ctx, agent, st)
	}
	return st, err
}

// maxRollbackAttempts bounds how often a rollback re-reads a state that
// changed under it (a step advancing on another node).
const maxRollbackAttempts = 16

// Rollback returns agent to version to (a stored version of it) or, with
// to empty, to the version that served before the latest rollout: during
// a rollout, its stable version; after one, the version it replaced;
// otherwise the newest version older than the one serving. Sessions on the
// version left move at their next request. It wins a race with a step
// advance: a lost compare-and-set is retried on the new state.
func (c *Controller) Rollback(ctx context.Context, agent, to, reason string) (State, error) {
	if err := c.checkAgent(agent, reason); err != nil {
		return State{}, err
	}
	if to != "" {
		if _, err := c.cfg.Router.VersionManifest(ctx, agent, to); err != nil {
			return State{}, renameField(err, "to")
		}
	}
	if reason == "" {
		reason = "rolled back by hand"
	}
	for attempt := 0; ; attempt++ {
		rs, err := c.cfg.Router.ReadRouting(ctx, agent)
		if err != nil {
			return State{}, err
		}
		if !rs.Exists {
			return State{}, api.Errorf(api.KindNotFound, "agent %q is not deployed", agent)
		}
		st, err := c.transition(ctx, agent, func(st *State) error {
			target := to
			if st.Phase.Active() {
				if target == "" {
					target = st.Stable
				}
			} else {
				if target == "" {
					var err error
					if target, err = c.previous(ctx, *st, rs.Stable); err != nil {
						return err
					}
				}
				if target == rs.Stable {
					return api.FieldErrorf(api.KindConflict, "to", "version %s of agent %s serves already", short(target), agent)
				}
				st.Phase, st.Stable, st.Canary = PhaseCompleted, rs.Stable, rs.Stable
				st.Steps, st.Step = []bundle.RolloutStep{{Percent: 100}}, 0
			}
			if st.Last == nil && len(st.Pending) == 0 {
				ref, err := c.recordChange(ctx, agent, st.Canary, "", "")
				if err != nil {
					return err
				}
				st.Last = ref
			}
			return c.rollbackTo(st, target, reason, nil)
		})
		if errors.Is(err, store.ErrConflict) && attempt < maxRollbackAttempts {
			continue
		}
		if err == nil {
			c.cfg.Meter.Forget(agent)
			c.prune(ctx, agent, st)
		}
		return st, err
	}
}

// previous is the version agent served before current: the stable version
// of the rollout that made current serve, else the newest stored version
// older than current.
func (c *Controller) previous(ctx context.Context, cur State, current string) (string, error) {
	agent := cur.Agent
	if cur.Phase == PhaseCompleted && cur.Canary == current && cur.Stable != "" && cur.Stable != current {
		return cur.Stable, nil
	}
	vs, err := c.cfg.Router.Versions(ctx, agent)
	if err != nil {
		return "", err
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Created.Before(vs[j].Created) })
	prev := ""
	for _, v := range vs {
		if v.Digest == current {
			break
		}
		prev = v.Digest
	}
	if prev == "" {
		return "", api.FieldErrorf(api.KindConflict, "to", "agent %s has no version older than %s to return to; name one with to", agent, short(current))
	}
	return prev, nil
}

// renameField points a problem about a version at field.
func renameField(err error, field string) error {
	var p *api.Problem
	if errors.As(err, &p) && p.Field != "" {
		cp := *p
		cp.Field = field
		return &cp
	}
	return err
}

func (c *Controller) checkAgent(agent, reason string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	return checkReason(reason)
}

// Status is an agent's deployment: which versions serve which share of
// new sessions, which are kept, and its latest rollout.
func (c *Controller) Status(ctx context.Context, agent string) (api.Deployment, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return api.Deployment{}, p
	}
	rs, err := c.cfg.Router.ReadRouting(ctx, agent)
	if err != nil {
		return api.Deployment{}, err
	}
	if !rs.Exists {
		return api.Deployment{}, api.Errorf(api.KindNotFound, "agent %q is not deployed", agent)
	}
	vs, err := c.cfg.Router.Versions(ctx, agent)
	if err != nil {
		return api.Deployment{}, err
	}
	live := c.cfg.Router.LiveSessions(agent)
	out := api.Deployment{Agent: agent, Versions: make([]api.VersionShare, 0, len(vs))}
	for _, v := range vs {
		sh := api.VersionShare{Version: v.Digest, Created: v.Created, Role: api.RoleKept, LiveSessions: live[v.Digest]}
		switch v.Digest {
		case rs.Stable:
			sh.Role, sh.Percent = api.RoleStable, 100-rs.Percent
		case rs.Canary:
			sh.Role, sh.Percent = api.RoleCanary, rs.Percent
		}
		out.Versions = append(out.Versions, sh)
	}
	cur, err := c.read(ctx, agent)
	if err != nil {
		return api.Deployment{}, err
	}
	if cur.rev != 0 {
		out.Rollout = wireStatus(cur.State)
	}
	return out, nil
}

func wireStatus(st State) *api.RolloutStatus {
	w := &api.RolloutStatus{Stable: st.Stable, Canary: st.Canary, Phase: string(st.Phase), Step: st.Step, Percent: st.Percent(),
		Started: st.Started, StepStarted: st.StepStarted, Reason: st.Reason}
	for _, s := range st.Steps {
		w.Steps = append(w.Steps, api.RolloutStep{Percent: s.Percent, PauseSeconds: s.PauseSeconds})
	}
	if st.Phase == PhaseRunning && st.Step < len(st.Steps) {
		next := st.StepStarted.Add(time.Duration(st.Steps[st.Step].PauseSeconds) * time.Second)
		w.NextStepAt = &next
	}
	if a := st.Analysis; a != nil {
		fig := func(f ledger.Figures) api.VersionFigures {
			return api.VersionFigures{Version: f.Version, Calls: f.Calls, Errors: f.Errors, P99Micros: f.P99Micros}
		}
		w.Analysis = &api.RolloutAnalysis{WindowSeconds: a.WindowSeconds, Canary: fig(a.Canary), Stable: fig(a.Stable)}
	}
	return w
}

// prune deletes agent's oldest versions beyond VersionsKept, never one
// that serves or that st names; failures are logged (the next rollout
// prunes again).
func (c *Controller) prune(ctx context.Context, agent string, st State) {
	if c.cfg.VersionsKept <= 0 {
		return
	}
	vs, err := c.cfg.Router.Versions(ctx, agent)
	if err != nil || len(vs) <= c.cfg.VersionsKept {
		return
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Created.Before(vs[j].Created) })
	rs, err := c.cfg.Router.ReadRouting(ctx, agent)
	if err != nil {
		return
	}
	keep := map[string]bool{rs.Stable: true, rs.Canary: true, st.Stable: true, st.Canary: true}
	extra := len(vs) - c.cfg.VersionsKept
	for _, v := range vs {
		if extra == 0 {
			break
		}
		if keep[v.Digest] {
			continue
		}
		if err := c.cfg.Router.DeleteVersion(ctx, agent, v.Digest); err != nil {
			c.log.Warn("prune version", "agent", agent, "version", short(v.Digest), "err", err)
			continue
		}
		extra--
	}
}
