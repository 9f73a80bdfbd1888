package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Phase is where a rollout is.
type Phase string

// The phases. Running and Paused rollouts are active (a canary serves);
// Completed and RolledBack ones are over.
const (
	PhaseRunning    Phase = "running"
	PhasePaused     Phase = "paused"
	PhaseCompleted  Phase = "completed"
	PhaseRolledBack Phase = "rolled_back"
	// PhaseSuperseded: the agent was deployed outside the rollout (a
	// plain deploy) while it ran; the deploy stands.
	PhaseSuperseded Phase = "superseded"
)

// Active reports whether a canary serves in phase p.
func (p Phase) Active() bool { return p == PhaseRunning || p == PhasePaused }

// State is an agent's latest rollout as stored: one record per agent,
// replaced by compare-and-set. The routing follows it (Routing).
type State struct {
	Agent string `json:"agent"`
	// Owner is who started the rollout (Start.Author).
	Owner string `json:"owner,omitempty"`
	// Run is the pipeline run that started it (Start.Run), if any.
	Run string `json:"run,omitempty"`
	// Stable is the version serving before the rollout, which a rollback
	// returns to; Canary is the version being rolled out.
	Stable string               `json:"stable"`
	Canary string               `json:"canary"`
	Steps  []bundle.RolloutStep `json:"steps"`
	// Step indexes Steps: the share the canary has now.
	Step        int       `json:"step"`
	Phase       Phase     `json:"phase"`
	Started     time.Time `json:"started"`
	StepStarted time.Time `json:"step_started"`
	Updated     time.Time `json:"updated"`
	// Reason says why the rollout ended or paused.
	Reason string `json:"reason,omitempty"`
	// Analysis is the latest step's evidence.
	Analysis *ledger.Analysis `json:"analysis,omitempty"`

	// Seq counts the transitions; each one's ledger entry waits in
	// Pending until appended (then LoggedSeq reaches its Seq), so an entry
	// whose append a crash cut off is appended when the controller next
	// reconciles (at least once). Last is the newest appended entry, the
	// parent of the next one.
	Seq       uint64         `json:"seq"`
	LoggedSeq uint64         `json:"logged_seq"`
	Pending   []PendingEntry `json:"pending,omitempty"`
	Last      *ledger.Ref    `json:"last,omitempty"`
	// Routed is the Seq whose routing was set: a state whose routing is
	// set is not set again, so a deploy after a finished rollout stands.
	Routed uint64 `json:"routed"`
}

// PendingEntry is a transition's ledger entry not yet appended.
type PendingEntry struct {
	Seq   uint64       `json:"seq"`
	Entry ledger.Entry `json:"entry"`
}

// Routing is the session routing the state asks for.
func (s State) Routing() session.Routing {
	if s.Phase.Active() {
		return session.Routing{Stable: s.Stable, Canary: s.Canary, Percent: s.Percent()}
	}
	if s.Phase == PhaseCompleted {
		return session.Routing{Stable: s.Canary}
	}
	return session.Routing{Stable: s.Stable}
}

// Percent is the canary's share now.
func (s State) Percent() int {
	if s.Step < 0 || s.Step >= len(s.Steps) {
		return 0
	}
	return s.Steps[s.Step].Percent
}

// maxPending bounds the entries waiting for the ledger: past it the
// ledger has been failing for long, and transitions wait.
const maxPending = 64

// record queues e as the ledger entry of a new transition.
func (s *State) record(e ledger.Entry) error {
	if len(s.Pending) >= maxPending {
		return api.Errorf(api.KindUnavailable, "agent %s: %d rollout entries wait for the ledger; try again once it appends", s.Agent, len(s.Pending))
	}
	s.Seq++
	s.Pending = append(s.Pending, PendingEntry{Seq: s.Seq, Entry: e})
	return nil
}

// stored is a state with the revision a compare-and-set replaces (0 when
// the agent never had a rollout).
type stored struct {
	State
	rev uint64
}

// read reads agent's state.
func (c *Controller) read(ctx context.Context, agent string) (stored, error) {
	e, err := c.kv.Get(ctx, store.Key(agent))
	if errors.Is(err, store.ErrNotFound) {
		return stored{State: State{Agent: agent}}, nil
	}
	if err != nil {
		return stored{}, fmt.Errorf("rollout of %s: %w", agent, err)
	}
	var st State
	if err := json.Unmarshal(e.Value, &st); err != nil {
		return stored{}, fmt.Errorf("rollout record of %s: %w", agent, err)
	}
	return stored{State: st, rev: e.Revision}, nil
}

// write replaces agent's state if it is still at rev; losing is a
// conflict wrapping store.ErrConflict.
func (c *Controller) write(ctx context.Context, st State, rev uint64) (uint64, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return 0, fmt.Errorf("encode rollout of %s: %w", st.Agent, err)
	}
	key := store.Key(st.Agent)
	var n uint64
	if rev == 0 {
		n, err = c.kv.Create(ctx, key, b)
	} else {
		n, err = c.kv.Update(ctx, key, b, rev)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
		return 0, api.Errorf(api.KindConflict, "the rollout of %s changed meanwhile: %w", st.Agent, store.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("store rollout of %s: %w", st.Agent, err)
	}
	return n, nil
}
