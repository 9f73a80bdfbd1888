package rollout

import (
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestSettingsFromConfig: the config's defaults (and gradual steps set in
// it) become the controller's.
func TestSettingsFromConfig(t *testing.T) {
	c := config.Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s := Settings(c)
	if len(s.Steps) != 1 || s.Steps[0] != (bundle.RolloutStep{Percent: 100}) {
		t.Fatalf("default steps %+v, want 100%% at once", s.Steps)
	}
	c.RolloutSteps = "10%:5m,50%:10m,100%"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []bundle.RolloutStep{{Percent: 10, PauseSeconds: 300}, {Percent: 50, PauseSeconds: 600}, {Percent: 100}}
	if g := Settings(c).Steps; len(g) != 3 || g[0] != want[0] || g[1] != want[1] || g[2] != want[2] {
		t.Fatalf("steps %+v", g)
	}
	if s.Thresholds != (Thresholds{MinCalls: 20, MaxErrorRateIncrease: 0.05, MaxP99Ratio: 1.5, P99Slack: 10 * time.Millisecond}) || s.Interval != time.Second || s.VersionsKept != c.AgentVersionsKept {
		t.Fatalf("settings %+v", s)
	}
}
