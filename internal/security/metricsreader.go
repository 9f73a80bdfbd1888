package security

import (
	"github.com/agentcloud/agentcloud/api"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The metrics-reader role (metricsreader.go): the user MetricsReader may
// read the daemon's Prometheus metrics (ActionMetricsRead, policy
// metrics-reader) and nothing else, so a scraper needs no administrator's
// token. An administrator issues its token (agentcloud token create
// --role metrics-reader); every other action is refused here, before the
// open actions that skip Cedar (status, whoami, listings).
const (
	MetricsReader     = "metrics-reader"
	ActionMetricsRead = "metrics.read"
)

// metricsReaderID is the role's SPIFFE ID in td.
func metricsReaderID(td spiffeid.TrustDomain) string {
	return spiffeid.RequireFromSegments(td, "user", MetricsReader).String()
}

// onlyMetrics refuses the metrics reader every action but reading metrics.
func (s *Security) onlyMetrics(p Principal, action string) error {
	if p.ID != s.metricsReader || action == ActionMetricsRead {
		return nil
	}
	return api.Errorf(api.KindForbidden, "%s is the metrics-reader role: it may read /metrics (%s) and nothing else", p.ID, ActionMetricsRead)
}
