package gatewaytest

import (
	"fmt"
	"os"
	"testing"
)

// TestMain lets the flood tests start this test binary as the agents'
// process (FloodConfig.AgentProcess).
func TestMain(m *testing.M) {
	if child, err := RunAgentProcess(); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
