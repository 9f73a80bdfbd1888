package isolate

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus collectors; a nil *metrics (no
// registerer) records nothing.
type metrics struct {
	kills *prometheus.CounterVec // by kind (js, wasm) and reason
}

// Kill reasons: the limit or failure that left an isolate dead.
const (
	killTime     = "time"     // ErrTimeout: the call's CPU/wall deadline
	killMemory   = "memory"   // ErrMemoryExceeded
	killCrash    = "crash"    // ErrCrashed: a trap inside the engine
	killCanceled = "canceled" // the caller went away mid-call
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{kills: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_isolate_kills_total",
		Help: "Isolates killed mid-call, by kind (js, wasm) and reason (time: CPU/wall limit, memory: memory limit, crash, canceled)."},
		[]string{"kind", "reason"})}
	if err := reg.Register(m.kills); err != nil {
		return nil, err
	}
	for _, k := range []string{"js", "wasm"} {
		for _, r := range []string{killTime, killMemory, killCrash, killCanceled} {
			m.kills.WithLabelValues(k, r)
		}
	}
	return m, nil
}

// killed counts an isolate of kind left dead by err.
func (m *metrics) killed(kind string, err error) {
	if m == nil {
		return
	}
	reason := killCrash
	switch {
	case errors.Is(err, ErrTimeout):
		reason = killTime
	case errors.Is(err, ErrMemoryExceeded):
		reason = killMemory
	case errors.Is(err, context.Canceled):
		reason = killCanceled
	}
	m.kills.WithLabelValues(kind, reason).Inc()
}
