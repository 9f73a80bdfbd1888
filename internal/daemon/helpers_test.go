package daemon_test

import "github.com/agentcloud/agentcloud/internal/daemon/daemontest"

// The helpers both daemon test packages share (internal/daemon/daemontest),
// under the names the tests use.
var (
	deployJS      = daemontest.DeployJS
	deployCounter = daemontest.DeployCounter
	callCounter   = daemontest.CallCounter
	freePort      = daemontest.FreeAddr
)
