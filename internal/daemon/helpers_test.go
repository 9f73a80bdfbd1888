package daemon_test

import (
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon/daemontest"
)

// The helpers both daemon test packages share (internal/daemon/daemontest),
// under the names the tests use.
var (
	deployJS      = daemontest.DeployJS
	deployCounter = daemontest.DeployCounter
	callCounter   = daemontest.CallCounter
	freePort      = daemontest.FreeAddr
)

// roomyAnonymousLimit raises the anonymous rate limit (20/s) of cfg for a
// test that is about authentication or routes, not limits, but sends
// refused or anonymous requests in bursts (a refused credential counts as
// anonymous): on a fast machine they would trip it and get 429 where the
// test wants 401. The limit keeps its name, which the agent card shows.
func roomyAnonymousLimit(cfg *config.Config) {
	cfg.Gateway.RateLimits = config.DefaultRateLimits()
	for i := range cfg.Gateway.RateLimits {
		if cfg.Gateway.RateLimits[i].Name == "anonymous" {
			cfg.Gateway.RateLimits[i].Quota = 10000
		}
	}
}
