package rollout

import (
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestSettingsFromConfig: the config's defaults become the controller's.
func TestSettingsFromConfig(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := Settings(c)
	want := []bundle.RolloutStep{{Percent: 10, PauseSeconds: 300}, {Percent: 50, PauseSeconds: 600}, {Percent: 100}}
	if len(s.Steps) != 3 || s.Steps[0] != want[0] || s.Steps[1] != want[1] || s.Steps[2] != want[2] {
		t.Fatalf("steps %+v", s.Steps)
	}
	if s.Thresholds != (Thresholds{MinCalls: 20, MaxErrorRateIncrease: 0.05, MaxP99Ratio: 1.5, P99Slack: 10 * time.Millisecond}) || s.Interval != time.Second || s.VersionsKept != c.AgentVersionsKept {
		t.Fatalf("settings %+v", s)
	}
}
