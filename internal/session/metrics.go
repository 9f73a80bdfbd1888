package session

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a live session leaves memory (the reason label of
// agentcloud_session_hibernations_total and _evictions_total): a fixed
// list, never an agent's or a session's name.
const (
	leaveIdle     = "idle"     // quiet past its agent's idle time
	leaveMemory   = "memory"   // least recently used past the memory budget
	leaveShutdown = "shutdown" // the manager closed
	leaveRequest  = "request"  // Hibernate was called
	leaveHandoff  = "handoff"  // its partition moved to another node
	leaveFenced   = "fenced"   // another node owns it now; heap dropped
	leaveRetired  = "retired"  // its version stopped serving; heap dropped
)

// metrics are the session manager's Prometheus collectors. A nil
// *metrics (no registerer) records nothing. Labels are fixed lists.
type metrics struct {
	activations   *prometheus.CounterVec // by from: snapshot, template
	activationErr prometheus.Counter
	activation    prometheus.Histogram
	hibernations  *prometheus.CounterVec // by reason
	evictions     *prometheus.CounterVec // by reason
	stateBytes    prometheus.Counter
	snapshotBytes prometheus.Histogram
	// stored counts session records (the sessions bucket): counted once
	// after Start, then moved by create and delete (countStored).
	stored atomic.Int64
}

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	mt := &metrics{
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_session_activations_total",
			Help: "Sessions activated, by what their heap came from (snapshot: a hibernated heap; template: a fresh start)."}, []string{"from"}),
		activationErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentcloud_session_activation_errors_total",
			Help: "Activations that failed (agent not deployed, init limits, store errors)."}),
		activation: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "agentcloud_session_activation_seconds",
			Help:    "Time to activate a session: load its record and version, restore or start its isolate.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		hibernations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_session_hibernations_total",
			Help: "Sessions hibernated (heap saved, isolate freed), by reason (idle, memory, shutdown, request, handoff)."}, []string{"reason"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_session_evictions_total",
			Help: "Live sessions removed without being asked: memory (LRU past the budget, hibernated), fenced (another node owns it), retired (its version stopped serving)."}, []string{"reason"}),
		stateBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentcloud_session_state_written_bytes_total",
			Help: "Bytes of durable session state committed (values written)."}),
		snapshotBytes: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "agentcloud_session_snapshot_bytes",
			Help: "Size of the heap snapshots saved at hibernation.", Buckets: prometheus.ExponentialBuckets(16<<10, 4, 9)}),
	}
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentcloud_sessions_live", Help: "Sessions with a live isolate on this node."},
		func() float64 { return float64(m.Stats().Live) })
	liveMem := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentcloud_session_live_memory_bytes", Help: "Linear memory of the live isolates together (the memory budget applies to it)."},
		func() float64 { return float64(m.Stats().LiveMemory) })
	hibernated := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentcloud_sessions_hibernated",
		Help: "Sessions with a stored record and no live isolate on this node (records counted at start, then kept by create and delete)."},
		func() float64 { return float64(max(0, mt.stored.Load()-int64(m.Stats().Live))) })
	for _, c := range []prometheus.Collector{mt.activations, mt.activationErr, mt.activation, mt.hibernations, mt.evictions, mt.stateBytes, mt.snapshotBytes, live, liveMem, hibernated} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{leaveIdle, leaveMemory, leaveShutdown, leaveRequest, leaveHandoff} {
		mt.hibernations.WithLabelValues(r)
	}
	for _, r := range []string{leaveMemory, leaveFenced, leaveRetired} {
		mt.evictions.WithLabelValues(r)
	}
	mt.activations.WithLabelValues("snapshot")
	mt.activations.WithLabelValues("template")
	return mt, nil
}

func (mt *metrics) activated(fromSnapshot bool, d time.Duration) {
	if mt == nil {
		return
	}
	from := "template"
	if fromSnapshot {
		from = "snapshot"
	}
	mt.activations.WithLabelValues(from).Inc()
	mt.activation.Observe(d.Seconds())
}

func (mt *metrics) activationFailed() {
	if mt != nil {
		mt.activationErr.Inc()
	}
}

// left counts a session leaving memory for reason; a memory-budget
// hibernation is an eviction too.
func (mt *metrics) left(reason string, snapshotBytes int) {
	if mt == nil {
		return
	}
	switch reason {
	case leaveFenced, leaveRetired:
		mt.evictions.WithLabelValues(reason).Inc()
		return
	case leaveMemory:
		mt.evictions.WithLabelValues(reason).Inc()
	}
	mt.hibernations.WithLabelValues(reason).Inc()
	mt.snapshotBytes.Observe(float64(snapshotBytes))
}

func (mt *metrics) stateWritten(n int) {
	if mt != nil && n > 0 {
		mt.stateBytes.Add(float64(n))
	}
}

// countStored counts the session records once, by one keys-only listing
// in the background: with a million sessions on disk the listing takes
// longer than a start may, so Start does not wait for it (the gauge counts
// up while it runs). Afterwards storedChanged keeps the count, so a scrape
// never scans the store. A session created or deleted while the listing
// runs may be counted twice or not at all. Without metrics it does
// nothing.
func (mt *metrics) countStored(m *Manager) {
	if mt == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		keys, err := m.meta.Keys(ctx, "")
		if err != nil {
			m.log.Warn("session metrics: count session records", "err", err)
			return
		}
		mt.stored.Add(int64(len(keys)))
	}()
}

// storedChanged moves the count of session records by n (+1 on create,
// -1 per record deleted).
func (mt *metrics) storedChanged(n int) {
	if mt != nil && n != 0 {
		mt.stored.Add(int64(n))
	}
}
