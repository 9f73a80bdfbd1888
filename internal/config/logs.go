package config

import "strconv"

// LogConfig bounds the in-memory log streams of live sessions
// (session.LogLimits; agentcloud logs).
type LogConfig struct {
	// AgentLines and AgentBytes cap one agent's stream.
	AgentLines int   `json:"agent_lines"`
	AgentBytes int64 `json:"agent_bytes"`
	// TenantBytes caps the streams of one owner's agents together;
	// TotalBytes caps every stream on the node.
	TenantBytes int64 `json:"tenant_bytes"`
	TotalBytes  int64 `json:"total_bytes"`
	// LineBytes is the longest text kept of one line.
	LineBytes int `json:"line_bytes"`
}

func defaultLogs() LogConfig {
	return LogConfig{AgentLines: 1000, AgentBytes: 1 << 20, TenantBytes: 8 << 20, TotalBytes: 64 << 20, LineBytes: 8 << 10}
}

// loadLogsEnv merges the AGENTCLOUD_LOGS_* variables.
func (c *Config) loadLogsEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	for name, set := range map[string]func(int64){
		"AGENT_LINES":  func(n int64) { c.Logs.AgentLines = int(n) },
		"AGENT_BYTES":  func(n int64) { c.Logs.AgentBytes = n },
		"TENANT_BYTES": func(n int64) { c.Logs.TenantBytes = n },
		"TOTAL_BYTES":  func(n int64) { c.Logs.TotalBytes = n },
		"LINE_BYTES":   func(n int64) { c.Logs.LineBytes = int(n) },
	} {
		v, ok := lookup("AGENTCLOUD_LOGS_" + name)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_LOGS_" + name, v, "want a whole number"})
			continue
		}
		set(n)
	}
	return errs
}

// validateLogs checks the logs settings: each bound positive and inside
// the next wider one.
func (c Config) validateLogs() Errors {
	var errs Errors
	l := c.Logs
	i64 := func(n int64) string { return strconv.FormatInt(n, 10) }
	if l.AgentLines < 1 || l.AgentLines > 1_000_000 {
		errs = append(errs, FieldError{"logs.agent_lines", strconv.Itoa(l.AgentLines), "want from 1 to 1000000"})
	}
	if l.LineBytes < 64 || l.LineBytes > 1<<20 {
		errs = append(errs, FieldError{"logs.line_bytes", strconv.Itoa(l.LineBytes), "want from 64 to 1048576 bytes"})
	}
	if l.AgentBytes < int64(l.LineBytes) || l.AgentBytes > 1<<30 {
		errs = append(errs, FieldError{"logs.agent_bytes", i64(l.AgentBytes), "want from logs.line_bytes to 1073741824 bytes"})
	}
	if l.TenantBytes < l.AgentBytes || l.TenantBytes > 1<<34 {
		errs = append(errs, FieldError{"logs.tenant_bytes", i64(l.TenantBytes), "want from logs.agent_bytes to 17179869184 bytes"})
	}
	if l.TotalBytes < l.TenantBytes || l.TotalBytes > 1<<36 {
		errs = append(errs, FieldError{"logs.total_bytes", i64(l.TotalBytes), "want from logs.tenant_bytes to 68719476736 bytes"})
	}
	return errs
}
