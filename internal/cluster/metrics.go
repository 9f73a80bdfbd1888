package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Forwarding results (the result label of
// agentcloud_cluster_session_requests_total).
const (
	fwdLocal       = "local"        // this member owns the session
	fwdForwarded   = "forwarded"    // sent to the owner's peer listener
	fwdUnavailable = "unavailable"  // no owner right now: 503
	fwdPeerServed  = "peer_served"  // forwarded here by a member, served
	fwdPeerRefused = "peer_refused" // forwarded here, not owned any more: 503
)

// metrics are the node's Prometheus collectors; a nil *metrics (no
// registerer) records nothing.
type metrics struct {
	requests *prometheus.CounterVec // by result
}

func newMetrics(reg prometheus.Registerer, n *Node) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_cluster_session_requests_total",
		Help: "Session requests by where the cluster sent them (local, forwarded, unavailable, peer_served, peer_refused)."}, []string{"result"})}
	owned := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentcloud_cluster_leases_owned",
		Help: "Partitions whose lease this member holds now."}, func() float64 {
		if mb := n.Member(); mb != nil {
			return float64(mb.OwnedCount())
		}
		return 0
	})
	parts := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "agentcloud_cluster_partitions",
		Help: "Partitions sessions hash into (0 until the member runs)."}, func() float64 {
		if mb := n.Member(); mb != nil {
			return float64(mb.cfg.Partitions)
		}
		return 0
	})
	for _, c := range []prometheus.Collector{m.requests, owned, parts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{fwdLocal, fwdForwarded, fwdUnavailable, fwdPeerServed, fwdPeerRefused} {
		m.requests.WithLabelValues(r)
	}
	return m, nil
}

func (m *metrics) request(result string) {
	if m != nil {
		m.requests.WithLabelValues(result).Inc()
	}
}
