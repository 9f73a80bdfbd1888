package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runner's Prometheus collectors; a nil *metrics (no
// registerer) records nothing. Kinds, stages and states are the
// pipeline's own fixed names.
type metrics struct {
	runs   *prometheus.CounterVec   // by kind and result
	stages *prometheus.HistogramVec // by stage and result
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_pipeline_runs_total",
			Help: "Pipeline runs ended, by kind (release, config) and result (passed, failed, cancelled)."}, []string{"kind", "result"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentcloud_pipeline_stage_seconds",
			Help:    "Time one attempt of a pipeline stage ran, by stage and result (passed, failed, waiting, skipped).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}, []string{"stage", "result"}),
	}
	for _, c := range []prometheus.Collector{m.runs, m.stages} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) runEnded(kind, result string) {
	if m == nil {
		return
	}
	if kind == "" {
		kind = "release"
	}
	m.runs.WithLabelValues(kind, result).Inc()
}

func (m *metrics) stageRan(stage, result string, d time.Duration) {
	if m != nil {
		m.stages.WithLabelValues(stage, result).Observe(d.Seconds())
	}
}

// stageResult is the result label of one stage attempt.
func stageResult(out outcome, err error) string {
	if err != nil {
		return "error"
	}
	return out.state
}
