package session

import (
	"context"
	"encoding/json"
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
	// counted says stored holds the whole count (the listing finished).
	counted atomic.Bool
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

// countStored counts the session records once. After a clean shutdown
// of a single node it takes the count that shutdown left
// (saveStoredCount) when the sessions bucket has not changed since;
// otherwise it counts by one keys-only listing in the background: with a
// million sessions on disk the listing takes longer than a start may, so
// Start does not wait for it (the gauge counts up while it runs), and its
// deliveries share the store connection and the CPU with the first
// activations, which is why a clean restart avoids it. Afterwards
// storedChanged keeps the count, so a scrape never scans the store. A
// session created or deleted while the listing runs may be counted twice
// or not at all. Without metrics it does nothing.
func (mt *metrics) countStored(ctx context.Context, m *Manager) {
	if mt == nil {
		return
	}
	if n, ok := m.storedCountAtClose(ctx); ok {
		mt.stored.Add(n)
		mt.counted.Store(true)
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
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
		mt.counted.Store(true)
	}()
}

// storedCountKey is the key, in the session_txns bucket, of the count of
// session records a clean shutdown left. It starts with "_" as the fence
// keys do (fence.go), so it is no session's key.
const storedCountKey = "_stored_count"

// storedCount is the record under storedCountKey.
type storedCount struct {
	Sessions int64 `json:"sessions"`
	// Revision is the sessions bucket's LastRevision when the count was
	// taken: the count holds only while the bucket is still there.
	Revision uint64 `json:"revision"`
}

// storedCountAtClose returns the count a clean shutdown left, if it
// still holds: one node (a cluster's other members write the bucket
// while this one is down, and this node's count never saw their writes)
// and no write to the sessions bucket since it was taken.
func (m *Manager) storedCountAtClose(ctx context.Context) (int64, bool) {
	if m.b.Owner != nil {
		return 0, false
	}
	e, err := m.txns.Get(ctx, storedCountKey)
	if err != nil {
		return 0, false
	}
	var c storedCount
	if err := json.Unmarshal(e.Value, &c); err != nil || c.Sessions < 0 || c.Revision == 0 {
		return 0, false
	}
	rev, err := m.meta.LastRevision(ctx)
	if err != nil || rev != c.Revision {
		return 0, false
	}
	return c.Sessions, true
}

// saveStoredCount stores the count of session records for the next start
// (storedCountAtClose), once every session is hibernated and nothing
// writes sessions any more. It reads the bucket's revision before the
// count: a record created in between makes the revision stale, never the
// count.
func (mt *metrics) saveStoredCount(ctx context.Context, m *Manager) {
	if mt == nil || m.b.Owner != nil || !mt.counted.Load() {
		return
	}
	rev, err := m.meta.LastRevision(ctx)
	if err != nil || rev == 0 {
		return
	}
	b, _ := json.Marshal(storedCount{Sessions: mt.stored.Load(), Revision: rev})
	if _, err := m.txns.Put(ctx, storedCountKey, b); err != nil {
		m.log.Warn("session metrics: save the count of session records", "err", err)
	}
}

// storedChanged moves the count of session records by n (+1 on create,
// -1 per record deleted).
func (mt *metrics) storedChanged(n int) {
	if mt != nil && n != 0 {
		mt.stored.Add(int64(n))
	}
}
