package rollout

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/agentcloud/agentcloud/internal/ledger"
)

// analyse compares st's canary with its stable version over the step's
// window so far. It returns the figures and, when the canary is worse than
// the thresholds allow, why.
func (c *Controller) analyse(st State, now time.Time) (*ledger.Analysis, string) {
	t := c.cfg.Thresholds
	cw := c.cfg.Meter.Read(st.Agent, st.Canary)
	sw := c.cfg.Meter.Read(st.Agent, st.Stable)
	window := max(now.Sub(st.StepStarted), 0)
	a := &ledger.Analysis{
		WindowSeconds:          uint64(window / time.Second),
		Canary:                 figures(st.Canary, cw),
		Stable:                 figures(st.Stable, sw),
		MaxErrorRateIncreaseBP: uint64(math.Round(t.MaxErrorRateIncrease * 10_000)),
		MaxP99RatioPct:         uint64(math.Round(t.MaxP99Ratio * 100)),
		P99SlackMicros:         uint64(t.P99Slack / time.Microsecond),
	}
	enough := func(w Window) bool { return w.Calls > 0 && w.Calls >= uint64(t.MinCalls) }
	if !enough(cw) {
		return a, ""
	}
	// Without enough stable calls to compare with, the stable version
	// counts as healthy and fast (its error rate 0, no latency bound).
	stableRate := 0.0
	if enough(sw) {
		stableRate = sw.ErrorRate()
	}
	if inc := cw.ErrorRate() - stableRate; inc > t.MaxErrorRateIncrease {
		return a, fmt.Sprintf("error rate %.1f%% (%d of %d calls) against the stable version's %.1f%%: above the allowed increase of %.1f points",
			100*cw.ErrorRate(), cw.Errors, cw.Calls, 100*stableRate, 100*t.MaxErrorRateIncrease)
	}
	if enough(sw) {
		bound := time.Duration(float64(sw.P99)*t.MaxP99Ratio) + t.P99Slack
		if cw.P99 > bound {
			return a, fmt.Sprintf("p99 latency %v against the stable version's %v: above the allowed %v (%.2f× + %v)",
				cw.P99, sw.P99, bound, t.MaxP99Ratio, t.P99Slack)
		}
	}
	return a, ""
}

func figures(version string, w Window) ledger.Figures {
	return ledger.Figures{Version: ledgerVersion(version), Calls: w.Calls, Errors: w.Errors, P99Micros: uint64(w.P99 / time.Microsecond)}
}

// Tick advances every active rollout whose step's pause is over and whose
// analysis passes, rolls back those whose canary is worse than the
// thresholds (at any point of a step), and brings the routing and the
// ledger up to date after a crash. Run calls it every interval; tests call
// it after moving the clock.
func (c *Controller) Tick(ctx context.Context) error {
	agents, err := c.kv.Keys(ctx, "")
	if err != nil {
		return fmt.Errorf("list rollouts: %w", err)
	}
	var errs []error
	for _, agent := range agents {
		if err := c.tickAgent(ctx, agent); err != nil {
			errs = append(errs, err)
			c.log.Warn("rollout tick", "agent", agent, "err", err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("rollout tick: %d agents failed, first: %w", len(errs), errs[0])
	}
	return nil
}

func (c *Controller) tickAgent(ctx context.Context, agent string) error {
	var ended bool
	st, err := c.transition(ctx, agent, func(st *State) error {
		if !st.Phase.Active() {
			return errNoChange // still syncs: a crash may have cut it short
		}
		rs, err := c.cfg.Router.ReadRouting(ctx, agent)
		if err != nil {
			return err
		}
		if st.Routed == st.Seq && rs.Exists && !servesOnly(rs.Routing, st.Stable, st.Canary) {
			// A plain deploy replaced the versions: it stands, the
			// rollout ends without touching the routing.
			st.Phase, st.Reason = PhaseSuperseded, "the agent was deployed outside the rollout; version "+short(rs.Stable)+" serves"
			st.Routed, ended = st.Seq, true
			return nil
		}
		c.cfg.Meter.Watch(agent) // after a restart the window begins now
		now := c.cfg.Now()
		a, bad := c.analyse(*st, now)
		if bad != "" {
			ended = true
			return c.rollbackTo(st, st.Stable, "automatic: "+bad, a)
		}
		if st.Phase == PhasePaused || now.Before(st.StepStarted.Add(st.Steps[st.Step].Pause())) {
			return errNoChange
		}
		if a.Canary.Calls < uint64(c.cfg.Thresholds.MinCalls) {
			return errNoChange // not enough evidence yet: the step holds
		}
		ended = st.Step == len(st.Steps)-1
		return c.promote(st, a, "analysis passed")
	})
	if err != nil {
		return err
	}
	if ended {
		c.cfg.Meter.Forget(agent)
		c.prune(ctx, agent, st)
	}
	return nil
}

// promote moves st one step on (to completion after the last step),
// recording the analysis it rested on, and starts the next window.
func (c *Controller) promote(st *State, a *ledger.Analysis, reason string) error {
	now := c.cfg.Now().UTC()
	state := ledger.RolloutPromoted
	if st.Step >= len(st.Steps)-1 {
		st.Phase, state = PhaseCompleted, ledger.RolloutCompleted
	} else {
		st.Step++
		st.Phase = PhaseRunning
	}
	st.StepStarted, st.Analysis, st.Reason = now, a, reason
	if err := st.record(c.stepEntry(*st, state, a)); err != nil {
		return err
	}
	c.cfg.Meter.Reset(st.Agent)
	c.log.Info("rollout step", "agent", st.Agent, "version", short(st.Canary), "percent", st.Percent(), "state", state)
	return nil
}

// rollbackTo ends st rolled back to version to, recording why and the
// figures (a, if any).
func (c *Controller) rollbackTo(st *State, to, reason string, a *ledger.Analysis) error {
	from := st.Canary
	if !st.Phase.Active() {
		from = st.Routing().Stable
	}
	st.Phase, st.Stable, st.Canary = PhaseRolledBack, to, from
	st.Reason, st.Analysis = reason, a
	st.StepStarted = c.cfg.Now().UTC()
	c.log.Warn("rollback", "agent", st.Agent, "from", short(from), "to", short(to), "reason", reason)
	return st.record(ledger.Entry{Type: ledger.TypeRollback, Time: c.cfg.Now().UTC(), Rollback: &ledger.Rollback{
		Agent: st.Agent, FromVersion: ledgerVersion(from), ToVersion: ledgerVersion(to), Reason: clip(reason), Analysis: a}})
}

func clip(s string) string {
	if len(s) > ledger.MaxText {
		return s[:ledger.MaxText]
	}
	return s
}

// Run ticks every interval until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = c.Tick(ctx)
		}
	}
}
