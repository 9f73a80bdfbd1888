package rollout

import (
	"math"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/session"
)

// Latency buckets of a sketch: bucket i holds durations up to
// sketchMin·sketchGrowth^i, so a quantile is known within 5 %, from 1 µs
// to over an hour, in a few hundred counters.
const (
	sketchMin     = float64(time.Microsecond)
	sketchGrowth  = 1.05
	sketchBuckets = 460
)

// sketch is one version's calls over a window: counts and a log-bucketed
// latency histogram.
type sketch struct {
	calls, errors uint64
	buckets       [sketchBuckets]uint64
}

func bucketOf(d time.Duration) int {
	if float64(d) <= sketchMin {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/sketchMin) / math.Log(sketchGrowth)))
	return min(i, sketchBuckets-1)
}

func (s *sketch) add(d time.Duration, failed bool) {
	s.calls++
	if failed {
		s.errors++
	}
	s.buckets[bucketOf(d)]++
}

// quantile is the upper bound of the bucket holding the q-th quantile.
func (s *sketch) quantile(q float64) time.Duration {
	if s.calls == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(s.calls)))
	var seen uint64
	for i, n := range s.buckets {
		seen += n
		if seen >= rank {
			return time.Duration(sketchMin * math.Pow(sketchGrowth, float64(i)))
		}
	}
	return time.Duration(sketchMin * math.Pow(sketchGrowth, sketchBuckets-1))
}

// Meter counts every call's outcome by agent and version since the
// agent's window last began (Reset). It is the session manager's Observer;
// the controller reads and resets it at each step. Counts live in memory:
// after a restart a step's window begins again.
type Meter struct {
	mu sync.Mutex
	// win holds the windows of agents with a rollout running: agent ->
	// version digest -> sketch. Calls of other agents are not kept.
	win map[string]map[string]*sketch
}

var _ session.Observer = (*Meter)(nil)

// NewMeter returns an empty meter.
func NewMeter() *Meter { return &Meter{win: map[string]map[string]*sketch{}} }

// Observe counts one call if its agent is watched.
func (m *Meter) Observe(o session.Outcome) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs, ok := m.win[o.Agent]
	if !ok {
		return
	}
	s := vs[o.Version]
	if s == nil {
		if len(vs) >= 8 { // a window compares two versions; a few more may drain
			return
		}
		s = &sketch{}
		vs[o.Version] = s
	}
	s.add(o.Duration, o.Failed)
}

// Reset starts a new window for agent (and watches it from now on).
func (m *Meter) Reset(agent string) {
	m.mu.Lock()
	m.win[agent] = map[string]*sketch{}
	m.mu.Unlock()
}

// Watch starts a window for agent unless one is open (a rollout that
// resumed after a restart).
func (m *Meter) Watch(agent string) {
	m.mu.Lock()
	if _, ok := m.win[agent]; !ok {
		m.win[agent] = map[string]*sketch{}
	}
	m.mu.Unlock()
}

// Forget stops watching agent.
func (m *Meter) Forget(agent string) {
	m.mu.Lock()
	delete(m.win, agent)
	m.mu.Unlock()
}

// Window is one version's figures since the window began.
type Window struct {
	Calls, Errors uint64
	P99           time.Duration
}

// ErrorRate is Errors/Calls (0 without calls).
func (w Window) ErrorRate() float64 {
	if w.Calls == 0 {
		return 0
	}
	return float64(w.Errors) / float64(w.Calls)
}

// Read returns agent's window for version.
func (m *Meter) Read(agent, version string) Window {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.win[agent][version]
	if s == nil {
		return Window{}
	}
	return Window{Calls: s.calls, Errors: s.errors, P99: s.quantile(0.99)}
}
