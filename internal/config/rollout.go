package config

import (
	"math"
	"strconv"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// loadRolloutEnv merges the AGENTCLOUD_ROLLOUT_* and
// AGENTCLOUD_AGENT_VERSIONS_KEPT variables.
func (c *Config) loadRolloutEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	get := func(name string) (string, bool) { return lookup("AGENTCLOUD_" + name) }
	if v, ok := get("ROLLOUT_STEPS"); ok {
		c.RolloutSteps = v
	}
	integer := func(name string, dst *int) {
		if v, ok := get(name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, "want a whole number"})
			}
			*dst = n
		}
	}
	float := func(name string, dst *float64) {
		if v, ok := get(name); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, "want a number, e.g. 0.05"})
			}
			*dst = f
		}
	}
	dur := func(name string, dst *Duration) {
		if v, ok := get(name); ok {
			if err := dst.Set(v); err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, err.Error()})
			}
		}
	}
	integer("ROLLOUT_MIN_CALLS", &c.RolloutMinCalls)
	float("ROLLOUT_MAX_ERROR_RATE_INCREASE", &c.RolloutMaxErrorRateIncrease)
	float("ROLLOUT_MAX_P99_RATIO", &c.RolloutMaxP99Ratio)
	dur("ROLLOUT_P99_SLACK", &c.RolloutP99Slack)
	dur("ROLLOUT_INTERVAL", &c.RolloutInterval)
	integer("AGENT_VERSIONS_KEPT", &c.AgentVersionsKept)
	return errs
}

// RolloutStepList returns the parsed rollout_steps (valid after Validate).
func (c Config) RolloutStepList() []bundle.RolloutStep {
	steps, _ := bundle.ParseRolloutSteps(c.RolloutSteps)
	return steps
}

// validateRollout checks the rollout settings.
func (c Config) validateRollout() Errors {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	if _, err := bundle.ParseRolloutSteps(c.RolloutSteps); err != nil {
		add("rollout_steps", c.RolloutSteps, err.Error()+` (e.g. "10%:5m,50%:10m,100%")`)
	}
	if n := c.RolloutMinCalls; n < 0 || n > 1_000_000 {
		add("rollout_min_calls", strconv.Itoa(n), "want from 0 to 1000000 calls per version and step")
	}
	if f := c.RolloutMaxErrorRateIncrease; math.IsNaN(f) || f < 0 || f > 1 {
		add("rollout_max_error_rate_increase", strconv.FormatFloat(f, 'g', -1, 64), "want a fraction from 0 to 1 (0.05 = five percentage points)")
	}
	if f := c.RolloutMaxP99Ratio; math.IsNaN(f) || f < 1 || f > 1000 {
		add("rollout_max_p99_ratio", strconv.FormatFloat(f, 'g', -1, 64), "want a ratio from 1 to 1000 (1.5 = the new version's p99 may be half again the stable one's)")
	}
	if d := c.RolloutP99Slack.D(); d < 0 || d > time.Minute {
		add("rollout_p99_slack", c.RolloutP99Slack.String(), "want a duration from 0 to 1m")
	}
	if d := c.RolloutInterval.D(); d < 10*time.Millisecond || d > time.Minute {
		add("rollout_interval", c.RolloutInterval.String(), "want a duration from 10ms to 1m")
	}
	if n := c.AgentVersionsKept; n < 2 || n > 10_000 {
		add("agent_versions_kept", strconv.Itoa(n), "want from 2 to 10000 (the stable and canary versions are always kept)")
	}
	return errs
}
