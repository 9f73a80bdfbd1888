package serverlimits

import "github.com/prometheus/client_golang/prometheus"

var (
	descConnsOpen = prometheus.NewDesc("agentcloud_gateway_connections_open", "Connections open on the API listener.", nil, nil)
	descConnsShed = prometheus.NewDesc("agentcloud_gateway_connections_shed_total",
		"Connections closed on accept for being over max_conns_per_ip or max_conns.", nil, nil)
)

// Collector reports the connection caps of the listener ln returns at
// scrape time (nothing while it returns nil).
func Collector(ln func() *Listener) prometheus.Collector { return collector(ln) }

type collector func() *Listener

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnsOpen
	ch <- descConnsShed
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ln := c()
	if ln == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descConnsOpen, prometheus.GaugeValue, float64(ln.Open()))
	ch <- prometheus.MustNewConstMetric(descConnsShed, prometheus.CounterValue, float64(ln.Shed()))
}
