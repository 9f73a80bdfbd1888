package toolbox

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxToolLabels caps the distinct tool names agentcloud_tool_calls_total
// carries: tool names come from registered MCP servers, which tenants can
// add, so past the cap calls count under "other". A name that is not a
// tool (an unknown tool was called) is never a label: it counts as
// "unknown".
const MaxToolLabels = 200

// metrics are the toolbox's Prometheus collectors; a nil *metrics (no
// registerer) records nothing.
type metrics struct {
	calls   *prometheus.CounterVec   // by tool and result
	latency *prometheus.HistogramVec // by result

	mu    sync.Mutex // guards names
	names map[string]bool
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_tool_calls_total",
			Help: "Tool calls by tool (capped at MaxToolLabels names, then \"other\"; \"unknown\" for names that are no tool) and result (ok or the refusal code)."},
			[]string{"tool", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "agentcloud_tool_call_seconds",
			Help:    "Time a tool call took, checks included, by result (ok or the refusal code).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"result"}),
		names: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{m.calls, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// codeLabel bounds the result label to the codes of errors.go.
func codeLabel(c Code) string {
	switch c {
	case CodeUnknownTool, CodeQuarantined, CodeInvalidArgs, CodeTooLarge, CodeNotInList, CodeForbidden,
		CodeRateLimited, CodeToolFailed, CodeUnavailable, CodeInternal, CodeUnauthorized:
		return string(c)
	}
	return "other"
}

// call counts one call of tool (known: the name is a tool) with result.
func (m *metrics) call(tool string, known bool, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(m.label(tool, known), result).Inc()
	m.latency.WithLabelValues(result).Observe(d.Seconds())
}

// label bounds the tool label (MaxToolLabels).
func (m *metrics) label(tool string, known bool) string {
	if !known {
		return "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[tool] {
		return tool
	}
	if len(m.names) >= MaxToolLabels {
		return "other"
	}
	m.names[tool] = true
	return tool
}
