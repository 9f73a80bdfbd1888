package egress

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's Prometheus collectors; a nil *metrics (no
// registerer) records nothing. The result label is an outcome of Event
// (allowed, denied, pending_approval, error); hosts and callers are never
// labels.
type metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	bytesOut  prometheus.Counter
	bytesIn   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_egress_requests_total",
			Help: "Outbound requests and tunnels through the egress proxy, by result (allowed, denied, pending_approval, error)."}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentcloud_egress_request_seconds",
			Help:    "Time from an outbound request entering the proxy to its response headers (or failure), by result.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"result"}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentcloud_egress_sent_bytes_total",
			Help: "Request body bytes the proxy sent upstream."}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{Name: "agentcloud_egress_received_bytes_total",
			Help: "Response body bytes the proxy passed back from upstream."}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.latency, m.bytesOut, m.bytesIn} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{Allow.String(), Deny.String(), Pending.String(), "error"} {
		m.decisions.WithLabelValues(r)
	}
	return m, nil
}

// event counts one audited outcome.
func (m *metrics) event(ev Event) {
	if m == nil {
		return
	}
	r := ev.Outcome
	switch r {
	case Allow.String(), Deny.String(), Pending.String(), "error":
	default:
		r = "error"
	}
	m.decisions.WithLabelValues(r).Inc()
	if ev.Duration > 0 {
		m.latency.WithLabelValues(r).Observe(ev.Duration.Seconds())
	}
}

// counter returns the byte counter of a direction (nil without metrics).
func (m *metrics) counter(out bool) prometheus.Counter {
	switch {
	case m == nil:
		return nil
	case out:
		return m.bytesOut
	}
	return m.bytesIn
}
