package fairq

import (
	"sort"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// Levels returns the state of every level, in configuration order.
func (s *Scheduler) Levels() []api.TrafficLevel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]api.TrafficLevel, 0, len(s.levels))
	for _, l := range s.levels {
		active := 0
		for _, f := range l.flows {
			if f.queued > 0 || f.executing > 0 {
				active++
			}
		}
		tl := api.TrafficLevel{
			Name: l.cfg.Name, Exempt: l.cfg.Exempt, Shares: l.cfg.Shares,
			NominalSeats: l.nominal, LendableSeats: l.lendable,
			Executing: l.executing, Queued: l.queued, Queues: len(l.queues),
			ActiveFlows: active, Dispatched: l.dispatched, Waited: l.waited, Rejected: l.rejected, TimedOut: l.timedOut,
		}
		if !l.cfg.Exempt && l.executing > l.nominal {
			tl.Borrowed = l.executing - l.nominal
		}
		tl.WaitP50Ms, tl.WaitP99Ms = l.waitPercentiles()
		out = append(out, tl)
	}
	return out
}

func (l *level) waitPercentiles() (p50, p99 float64) {
	n := l.waitN
	if n > len(l.waits) {
		n = len(l.waits)
	}
	if n == 0 {
		return 0, 0
	}
	w := append([]float64(nil), l.waits[:n]...)
	sort.Float64s(w)
	at := func(p float64) float64 { return w[int(p*float64(n-1)+0.5)] * 1000 }
	return at(0.50), at(0.99)
}

// Flows returns the remembered flows of one level ("" for every level),
// most active first.
func (s *Scheduler) Flows(level string) []api.TrafficFlow {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var out []api.TrafficFlow
	for _, l := range s.levels {
		if level != "" && l.cfg.Name != level {
			continue
		}
		for _, f := range l.flows {
			out = append(out, flowView(l, f, now))
		}
	}
	sortFlows(out)
	return out
}

// Top returns the n flows with the highest recent arrival rate across all
// levels.
func (s *Scheduler) Top(n int) []api.TrafficFlow {
	out := s.Flows("")
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

func flowView(l *level, f *flow, now time.Time) api.TrafficFlow {
	qi := -1
	if f.q != nil {
		qi = f.q.idx
	}
	return api.TrafficFlow{
		Level: l.cfg.Name, Flow: f.key, Queue: qi,
		Executing: f.executing, Queued: f.queued,
		Dispatched: f.dispatched, Rejected: f.rejected,
		RatePerSecond: decay(f.rate, now.Sub(f.rateAt)),
		LastSeen:      f.lastSeen.UTC().Format(time.RFC3339Nano),
	}
}

func sortFlows(fs []api.TrafficFlow) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].RatePerSecond != fs[j].RatePerSecond {
			return fs[i].RatePerSecond > fs[j].RatePerSecond
		}
		if fs[i].Level != fs[j].Level {
			return fs[i].Level < fs[j].Level
		}
		return fs[i].Flow < fs[j].Flow
	})
}
