package modelgw

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gateway's Prometheus collectors (nil-safe when not registered).
type metrics struct {
	calls    *prometheus.CounterVec // by outcome
	attempts *prometheus.CounterVec // by provider and result
	tokens   *prometheus.CounterVec // by provider and kind
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_model_calls_total",
			Help: "Model gateway calls by outcome (ok, cache_hit, budget_exceeded, error)."}, []string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_model_provider_attempts_total",
			Help: "Requests to model providers by provider and result (ok, HTTP status, timeout, error)."}, []string{"provider", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_model_tokens_total",
			Help: "Tokens reported by model providers, by provider and kind (prompt, completion)."}, []string{"provider", "kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.attempts, m.tokens} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
