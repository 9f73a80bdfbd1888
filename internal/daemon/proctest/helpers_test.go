package proctest_test

import (
	"context"
	"os"
	"testing"

	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/daemon/daemontest"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestMain lets tests re-run this binary as the real agentcloud CLI, so
// crash, signal and cluster tests exercise separate daemon processes.
func TestMain(m *testing.M) {
	process.MaybeRunInit() // the daemons' process-tier sandboxes re-execute this binary
	if os.Getenv("AGENTCLOUD_TEST_MAIN") == "1" {
		os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// The helpers both daemon test packages share (internal/daemon/daemontest),
// under the names the tests use.
var (
	deployJS      = daemontest.DeployJS
	deployCounter = daemontest.DeployCounter
	callCounter   = daemontest.CallCounter
	freePort      = daemontest.FreeAddr
)

type counterResp = daemontest.CounterResp

const counterAgent = daemontest.CounterAgent
