package sandbox

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Manager's Prometheus collectors; a nil *metrics (no
// registerer) records nothing. Tiers and templates come from the
// configuration, so their labels are bounded.
type metrics struct {
	create *prometheus.HistogramVec // by tier and pooled
	exec   *prometheus.HistogramVec // by tier
	oom    *prometheus.CounterVec   // by tier
}

var (
	descLive = prometheus.NewDesc("agentcloud_sandboxes_live", "Sandboxes that exist (or are being created) on this node, by tier.", []string{"tier"}, nil)
	descPool = prometheus.NewDesc("agentcloud_sandbox_pool_ready", "Prepared sandboxes waiting in a warm pool, by tier and template.", []string{"tier", "template"}, nil)
	descCap  = prometheus.NewDesc("agentcloud_sandbox_pool_size", "Prepared sandboxes a warm pool keeps, by tier and template.", []string{"tier", "template"}, nil)
)

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	mt := &metrics{
		create: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentcloud_sandbox_create_seconds",
			Help: "Time to create a sandbox, by tier and whether a warm pool had one ready (pooled: true, false).", Buckets: latencyBuckets},
			[]string{"tier", "pooled"}),
		exec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentcloud_sandbox_exec_seconds",
			Help: "Time an exec ran to its end, by tier.", Buckets: latencyBuckets}, []string{"tier"}),
		oom: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_sandbox_oom_kills_total",
			Help: "Execs whose processes were killed for going over the sandbox's memory limit, by tier."}, []string{"tier"}),
	}
	for _, c := range []prometheus.Collector{mt.create, mt.exec, mt.oom, liveCollector{m}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for t := range m.tiers {
		mt.oom.WithLabelValues(t)
	}
	return mt, nil
}

func (mt *metrics) created(tier string, pooled bool, d time.Duration) {
	if mt == nil {
		return
	}
	p := "false"
	if pooled {
		p = "true"
	}
	mt.create.WithLabelValues(tier, p).Observe(d.Seconds())
}

// liveCollector reports live sandboxes and pools at scrape time.
type liveCollector struct{ m *Manager }

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLive
	ch <- descPool
	ch <- descCap
}

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	live := map[string]int{}
	for t := range c.m.tiers {
		live[t] = 0
	}
	c.m.mu.Lock()
	for _, e := range c.m.sandboxes {
		live[e.spec.Tier]++
	}
	for _, s := range c.m.pending {
		live[s.Tier]++
	}
	c.m.mu.Unlock()
	for t, n := range live {
		ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(n), t)
	}
	for k, p := range c.m.pools {
		ch <- prometheus.MustNewConstMetric(descPool, prometheus.GaugeValue, float64(len(p.ready)), k.tier, k.template)
		ch <- prometheus.MustNewConstMetric(descCap, prometheus.GaugeValue, float64(p.size), k.tier, k.template)
	}
}

// metered is a sandbox whose execs are timed and whose memory-limit kills
// are counted. The network hook sees the tier's own value (it may look
// for optional interfaces such as EgressSocketer); everyone else gets
// this one from the Manager.
type metered struct {
	Sandbox
	mt *metrics
}

// meteredTerminal is a metered sandbox of a tier with terminals: the
// wrapper must not hide an optional interface the routes look for.
type meteredTerminal struct {
	metered
	Terminaler
}

// meter wraps sb so its execs are measured, keeping the optional
// interfaces (Terminaler) the API looks for with a type assertion.
func meter(sb Sandbox, mt *metrics) Sandbox {
	m := metered{sb, mt}
	if t, ok := sb.(Terminaler); ok {
		return meteredTerminal{m, t}
	}
	return m
}

func (s metered) Exec(ctx context.Context, spec ExecSpec, stdout, stderr io.Writer) (int, error) {
	t0 := time.Now()
	code, err := s.Sandbox.Exec(ctx, spec, stdout, stderr)
	tier := s.Tier()
	s.mt.exec.WithLabelValues(tier).Observe(time.Since(t0).Seconds())
	if errors.Is(err, ErrMemoryLimit) {
		s.mt.oom.WithLabelValues(tier).Inc()
	}
	return code, err
}
