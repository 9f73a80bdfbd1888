package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Labels are bounded:
// level names come from the configuration, reasons and methods from fixed
// lists.
type metrics struct {
	dispatched *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	wait       *prometheus.HistogramVec
	identified *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentcloud_gateway_dispatched_total", Help: "Requests given a seat (or run as exempt or long-running), by priority level.",
		}, []string{"level"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentcloud_gateway_rejected_total", Help: "Requests the gateway refused, by priority level and reason.",
		}, []string{"level", "reason"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentcloud_gateway_wait_seconds", Help: "Time dispatched requests waited in a queue, by priority level.",
			Buckets: []float64{0, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"level"}),
		identified: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentcloud_gateway_identified_total", Help: "Requests by how their identity was established (mtls, jwt, web-bot-auth, none) and Web Bot Auth outcome.",
		}, []string{"method", "web_bot_auth"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.dispatched, m.rejected, m.wait, m.identified, levelCollector{g}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// levelCollector reports the scheduler's gauges at scrape time.
type levelCollector struct{ g *Gateway }

var (
	descQueued    = prometheus.NewDesc("agentcloud_gateway_queued", "Requests waiting in a queue, by priority level.", []string{"level"}, nil)
	descExecuting = prometheus.NewDesc("agentcloud_gateway_executing", "Requests holding a seat, by priority level.", []string{"level"}, nil)
	descSeats     = prometheus.NewDesc("agentcloud_gateway_nominal_seats", "Seats a priority level is entitled to.", []string{"level"}, nil)
	descLimit     = prometheus.NewDesc("agentcloud_gateway_concurrency_limit", "The total of seats (adaptive when enabled).", nil, nil)
)

func (c levelCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descQueued
	ch <- descExecuting
	ch <- descSeats
	ch <- descLimit
}

func (c levelCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.g.sched.Levels() {
		ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(l.Queued), l.Name)
		ch <- prometheus.MustNewConstMetric(descExecuting, prometheus.GaugeValue, float64(l.Executing), l.Name)
		ch <- prometheus.MustNewConstMetric(descSeats, prometheus.GaugeValue, float64(l.NominalSeats), l.Name)
	}
	ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(c.g.sched.Limit()))
}
