package store

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's Prometheus collectors; a nil *metrics (no
// registerer) records nothing. The op label is a fixed list (put, create,
// update, delete, append, blob_put); bucket and key names are never labels.
type metrics struct {
	latency *prometheus.HistogramVec // by op
	errors  *prometheus.CounterVec   // by op
}

var (
	descFsync    = prometheus.NewDesc("agentcloud_store_fsync_per_write", "1 when the embedded store fsyncs every write before acknowledging it (so write latency includes the fsync), 0 when it does not (no_sync, or an external NATS server that decides).", nil, nil)
	descStreams  = prometheus.NewDesc("agentcloud_store_streams", "JetStream streams (buckets, logs, object stores).", nil, nil)
	descMessages = prometheus.NewDesc("agentcloud_store_messages", "Messages held in JetStream.", nil, nil)
	descBytes    = prometheus.NewDesc("agentcloud_store_bytes", "Bytes held in JetStream.", nil, nil)
	descRCGets   = prometheus.NewDesc("agentcloud_store_read_cache_gets_total", "Gets of buckets with a read cache, by result (disjoint): hit (answered by the cache), miss (not in it; answered by JetStream), corrupt (a cached record failed its checksum; answered by JetStream).", []string{"result"}, nil)
	descRCBytes  = prometheus.NewDesc("agentcloud_store_read_cache_bytes", "Memory the store's read caches hold (rings outside the Go heap).", nil, nil)
)

var storeOps = []string{"put", "create", "update", "delete", "append", "blob_put"}

func newMetrics(reg prometheus.Registerer, s *Store) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentcloud_store_write_seconds",
			Help:    "Time a store write took to be acknowledged (with the fsync when agentcloud_store_fsync_per_write is 1), by op.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_store_write_errors_total",
			Help: "Store writes that failed (conflicts and existing keys included), by op."}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.latency, m.errors, statsCollector{s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, op := range storeOps {
		m.latency.WithLabelValues(op)
		m.errors.WithLabelValues(op)
	}
	return m, nil
}

// wrote records one write of op that started at t0 and ended with err.
func (m *metrics) wrote(op string, t0 time.Time, err error) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(op).Observe(time.Since(t0).Seconds())
	if err != nil {
		m.errors.WithLabelValues(op).Inc()
	}
}

// statsCollector reports the durability setting and JetStream's totals at
// scrape time.
type statsCollector struct{ s *Store }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFsync
	ch <- descStreams
	ch <- descMessages
	ch <- descBytes
	ch <- descRCGets
	ch <- descRCBytes
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	fsync := 0.0
	if c.s.opts.URL == "" && !c.s.opts.NoSync {
		fsync = 1
	}
	ch <- prometheus.MustNewConstMetric(descFsync, prometheus.GaugeValue, fsync)
	hits, misses, corrupt, size := c.s.readCacheStats()
	ch <- prometheus.MustNewConstMetric(descRCGets, prometheus.CounterValue, float64(hits), "hit")
	ch <- prometheus.MustNewConstMetric(descRCGets, prometheus.CounterValue, float64(misses), "miss")
	ch <- prometheus.MustNewConstMetric(descRCGets, prometheus.CounterValue, float64(corrupt), "corrupt")
	ch <- prometheus.MustNewConstMetric(descRCBytes, prometheus.GaugeValue, float64(size))
	if c.s.cur.Load() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.s.Stats(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(st.Streams))
	ch <- prometheus.MustNewConstMetric(descMessages, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes))
}
