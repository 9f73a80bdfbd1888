package rollout

import "github.com/agentcloud/agentcloud/internal/config"

// Settings returns the node's rollout settings (validated config) as the
// part of a Config they fill: default steps, thresholds, interval and
// versions kept. The caller adds the store, router, ledger and clock.
func Settings(c config.Config) Config {
	return Config{
		Steps: c.RolloutStepList(),
		Thresholds: Thresholds{
			MinCalls:             c.RolloutMinCalls,
			MaxErrorRateIncrease: c.RolloutMaxErrorRateIncrease,
			MaxP99Ratio:          c.RolloutMaxP99Ratio,
			P99Slack:             c.RolloutP99Slack.D(),
		},
		Interval:     c.RolloutInterval.D(),
		VersionsKept: c.AgentVersionsKept,
	}
}
