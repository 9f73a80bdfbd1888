package config

import (
	"strings"
	"testing"
)

// TestLogsConfigClass: the logs settings load from AGENTCLOUD_LOGS_*, and
// a bad number or a bound outside its range (or wider than the next
// bound) is refused naming the field.
func TestLogsConfigClass(t *testing.T) {
	c := Default()
	env := map[string]string{"AGENTCLOUD_LOGS_AGENT_LINES": "50", "AGENTCLOUD_LOGS_AGENT_BYTES": "65536",
		"AGENTCLOUD_LOGS_TENANT_BYTES": "131072", "AGENTCLOUD_LOGS_TOTAL_BYTES": "262144", "AGENTCLOUD_LOGS_LINE_BYTES": "1024"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Logs != (LogConfig{AgentLines: 50, AgentBytes: 65536, TenantBytes: 131072, TotalBytes: 262144, LineBytes: 1024}) {
		t.Fatalf("not applied: %+v", c.Logs)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = Default()
	if err := c.LoadEnv(func(k string) (string, bool) { return "lots", k == "AGENTCLOUD_LOGS_LINE_BYTES" }); err == nil ||
		!strings.Contains(err.Error(), "AGENTCLOUD_LOGS_LINE_BYTES") {
		t.Fatalf("bad env: %v", err)
	}
	for _, c := range []struct {
		field string
		mod   func(*LogConfig)
	}{
		{"logs.agent_lines", func(l *LogConfig) { l.AgentLines = 0 }},
		{"logs.line_bytes", func(l *LogConfig) { l.LineBytes = 10 }},
		{"logs.agent_bytes", func(l *LogConfig) { l.AgentBytes = int64(l.LineBytes) - 1 }},
		{"logs.tenant_bytes", func(l *LogConfig) { l.TenantBytes = l.AgentBytes - 1 }},
		{"logs.total_bytes", func(l *LogConfig) { l.TotalBytes = -1 }},
	} {
		cfg := Default()
		c.mod(&cfg.Logs)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v", c.field, err)
		}
	}
}
