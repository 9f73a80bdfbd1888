package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateNamesFields(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"listen no port", func(c *Config) { c.Listen = "localhost" }, "listen"},
		{"listen bad host", func(c *Config) { c.Listen = "exa mple:80" }, "listen"},
		{"listen big port", func(c *Config) { c.Listen = "127.0.0.1:70000" }, "listen"},
		{"empty data", func(c *Config) { c.Data = " " }, "data"},
		{"level", func(c *Config) { c.LogLevel = "loud" }, "log_level"},
		{"format", func(c *Config) { c.LogFormat = "xml" }, "log_format"},
		{"nats url", func(c *Config) { c.NATSURL = "http://x" }, "nats_url"},
		{"nats both", func(c *Config) { c.NATSURL = "nats://127.0.0.1:4222"; c.NATSListen = "127.0.0.1:4222" }, "nats_listen"},
		{"body", func(c *Config) { c.MaxBodyBytes = 1 }, "max_body_bytes"},
		{"shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout"},
		{"node", func(c *Config) { c.NodeID = "a.b" }, "node_id"},
		{"audit age", func(c *Config) { c.AuditMaxAge = Duration(time.Minute) }, "audit_max_age"},
		{"audit negative age", func(c *Config) { c.AuditMaxAge = Duration(-time.Hour) }, "audit_max_age"},
		{"audit bytes", func(c *Config) { c.AuditMaxBytes = 1000 }, "audit_max_bytes"},
		{"audit negative bytes", func(c *Config) { c.AuditMaxBytes = -1 }, "audit_max_bytes"},
		{"audit failures", func(c *Config) { c.AuditAuthFailuresPerMinute = 0 }, "audit_auth_failures_per_minute"},
		{"sandbox count", func(c *Config) { c.SandboxMaxPerOwner = -1 }, "sandbox_max_per_owner"},
		{"sandbox cpus", func(c *Config) { c.SandboxMaxCPUs = 1000 }, "sandbox_max_cpus"},
		{"sandbox cpus negative", func(c *Config) { c.SandboxMaxCPUs = -1 }, "sandbox_max_cpus"},
		{"sandbox memory tiny", func(c *Config) { c.SandboxMaxMemoryMB = 4 }, "sandbox_max_memory_mb"},
		{"sandbox memory huge", func(c *Config) { c.SandboxMaxMemoryMB = 1 << 30 }, "sandbox_max_memory_mb"},
		{"sandbox disk", func(c *Config) { c.SandboxMaxDiskMB = -5 }, "sandbox_max_disk_mb"},
		{"sandbox pids", func(c *Config) { c.SandboxMaxPids = 2 }, "sandbox_max_pids"},
		{"sandbox pool huge", func(c *Config) { c.SandboxPoolProcess = MaxSandboxPoolProcess + 1 }, "sandbox_pool_process"},
		{"sandbox pool negative", func(c *Config) { c.SandboxPoolProcess = -1 }, "sandbox_pool_process"},
		{"session read cache negative", func(c *Config) { c.SessionReadCacheMiB = -1 }, "session_read_cache_mib"},
		{"session read cache huge", func(c *Config) { c.SessionReadCacheMiB = 1<<16 + 1 }, "session_read_cache_mib"},
		{"sandbox timeout", func(c *Config) { c.SandboxMaxTimeout = Duration(48 * time.Hour) }, "sandbox_max_timeout"},
		{"sandbox timeout tiny", func(c *Config) { c.SandboxMaxTimeout = Duration(time.Millisecond) }, "sandbox_max_timeout"},
		{"session body small", func(c *Config) { c.SessionMaxBodyBytes = 10 }, "session_max_body_bytes"},
		{"session body huge", func(c *Config) { c.SessionMaxBodyBytes = 2 << 30 }, "session_max_body_bytes"},
		{"websocket message tiny", func(c *Config) { c.WebSockets.MaxMessageBytes = 10 }, "websockets.max_message_bytes"},
		{"websocket message huge", func(c *Config) { c.WebSockets.MaxMessageBytes = 2 << 30 }, "websockets.max_message_bytes"},
		{"websockets per session", func(c *Config) { c.WebSockets.PerSession = 0 }, "websockets.per_session"},
		{"websockets per tenant", func(c *Config) { c.WebSockets.PerTenant = 1; c.WebSockets.PerSession = 2 }, "websockets.per_tenant"},
		{"websocket idle", func(c *Config) { c.WebSockets.IdleTimeout = Duration(time.Millisecond) }, "websockets.idle_timeout"},
		{"cache tiny", func(c *Config) { c.Cache.Bytes = 2000; c.Cache.EntryBytes = 1024 }, "cache.bytes"},
		{"cache entry over the budget", func(c *Config) { c.Cache.EntryBytes = c.Cache.Bytes + 1 }, "cache.entry_bytes"},
		{"cache entry tiny", func(c *Config) { c.Cache.EntryBytes = 0 }, "cache.entry_bytes"},
		{"init timeout zero", func(c *Config) { c.AgentInitTimeout = 0 }, "agent_init_timeout"},
		{"init timeout long", func(c *Config) { c.AgentInitTimeout = Duration(time.Hour) }, "agent_init_timeout"},
		{"rollout steps empty", func(c *Config) { c.RolloutSteps = "" }, "rollout_steps"},
		{"rollout steps not ending at 100", func(c *Config) { c.RolloutSteps = "10%:5m,50%" }, "rollout_steps"},
		{"rollout steps decreasing", func(c *Config) { c.RolloutSteps = "50%,10%,100%" }, "rollout_steps"},
		{"rollout min calls", func(c *Config) { c.RolloutMinCalls = -1 }, "rollout_min_calls"},
		{"rollout error increase", func(c *Config) { c.RolloutMaxErrorRateIncrease = 1.5 }, "rollout_max_error_rate_increase"},
		{"rollout error increase NaN", func(c *Config) { c.RolloutMaxErrorRateIncrease = math.NaN() }, "rollout_max_error_rate_increase"},
		{"rollout p99 ratio", func(c *Config) { c.RolloutMaxP99Ratio = 0.5 }, "rollout_max_p99_ratio"},
		{"rollout p99 slack", func(c *Config) { c.RolloutP99Slack = Duration(-time.Second) }, "rollout_p99_slack"},
		{"rollout interval", func(c *Config) { c.RolloutInterval = 0 }, "rollout_interval"},
		{"versions kept", func(c *Config) { c.AgentVersionsKept = 1 }, "agent_versions_kept"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != tc.field {
				t.Fatalf("want one error on %s, got %v", tc.field, err)
			}
			if errs[0].Detail == "" {
				t.Fatal("error does not say what is allowed")
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := Default()
	if err := c.LoadFile(write(`{"listen":"127.0.0.1:9999","shutdown_timeout":"3s"}`)); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9999" || c.ShutdownTimeout.D() != 3*time.Second {
		t.Fatalf("not applied: %+v", c)
	}
	c = Default()
	if err := c.LoadFile(write(`{"sandbox_max_memory_mb":512,"sandbox_max_cpus":1.5,"sandbox_max_timeout":"30m","sandbox_max_pids":0}`)); err != nil {
		t.Fatal(err)
	}
	if c.SandboxMaxMemoryMB != 512 || c.SandboxMaxCPUs != 1.5 || c.SandboxMaxTimeout.D() != 30*time.Minute || c.SandboxMaxPids != 0 || c.Validate() != nil {
		t.Fatalf("sandbox caps not applied: %+v", c)
	}
	for in, want := range map[string]string{
		`{"lisen":"x"}`:              `unknown field "lisen"`,
		"{\n\"listen\": ,}":          "line 2",
		`{"max_body_bytes":"big"}`:   `field "max_body_bytes"`,
		`{"shutdown_timeout":"ten"}`: "duration",
		`{} {}`:                      "trailing data",
	} {
		c := Default()
		err := c.LoadFile(write(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want error containing %q, got %v", in, want, err)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	env := map[string]string{"AGENTCLOUD_LISTEN": "127.0.0.1:1", "AGENTCLOUD_SHUTDOWN_TIMEOUT": "2s", "AGENTCLOUD_MAX_BODY_BYTES": "2048",
		"AGENTCLOUD_AUDIT_MAX_AGE": "720h", "AGENTCLOUD_AUDIT_MAX_BYTES": "0", "AGENTCLOUD_AUDIT_AUTH_FAILURES_PER_MINUTE": "3",
		"AGENTCLOUD_AGENT_INIT_TIMEOUT": "3s", "AGENTCLOUD_SESSION_MAX_BODY_BYTES": "4096"}
	c := Default()
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:1" || c.ShutdownTimeout.D() != 2*time.Second || c.MaxBodyBytes != 2048 ||
		c.AuditMaxAge.D() != 720*time.Hour || c.AuditMaxBytes != 0 || c.AuditAuthFailuresPerMinute != 3 ||
		c.AgentInitTimeout.D() != 3*time.Second || c.SessionMaxBodyBytes != 4096 {
		t.Fatalf("not applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{"AGENTCLOUD_ROLLOUT_STEPS": "5%:1m,100%", "AGENTCLOUD_ROLLOUT_MIN_CALLS": "7",
		"AGENTCLOUD_ROLLOUT_MAX_ERROR_RATE_INCREASE": "0.1", "AGENTCLOUD_ROLLOUT_MAX_P99_RATIO": "2",
		"AGENTCLOUD_ROLLOUT_P99_SLACK": "20ms", "AGENTCLOUD_ROLLOUT_INTERVAL": "250ms", "AGENTCLOUD_AGENT_VERSIONS_KEPT": "4"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.RolloutSteps != "5%:1m,100%" || c.RolloutMinCalls != 7 || c.RolloutMaxErrorRateIncrease != 0.1 || c.RolloutMaxP99Ratio != 2 ||
		c.RolloutP99Slack.D() != 20*time.Millisecond || c.RolloutInterval.D() != 250*time.Millisecond || c.AgentVersionsKept != 4 || c.Validate() != nil {
		t.Fatalf("rollout settings not applied: %+v", c)
	}
	if got := c.RolloutStepList(); len(got) != 2 || got[0].Percent != 5 || got[0].PauseSeconds != 60 || got[1].Percent != 100 {
		t.Fatalf("steps = %+v", got)
	}
	for _, bad := range []string{"AGENTCLOUD_AUDIT_MAX_BYTES", "AGENTCLOUD_AUDIT_AUTH_FAILURES_PER_MINUTE", "AGENTCLOUD_AUDIT_MAX_AGE",
		"AGENTCLOUD_ROLLOUT_MIN_CALLS", "AGENTCLOUD_ROLLOUT_MAX_P99_RATIO", "AGENTCLOUD_ROLLOUT_P99_SLACK", "AGENTCLOUD_AGENT_VERSIONS_KEPT"} {
		err := c.LoadEnv(func(k string) (string, bool) { return "lots", k == bad })
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s=lots: want an error naming it, got %v", bad, err)
		}
	}
	env = map[string]string{"AGENTCLOUD_SANDBOX_MAX_CPUS": "0.5", "AGENTCLOUD_SANDBOX_MAX_MEMORY_MB": "256",
		"AGENTCLOUD_SANDBOX_MAX_DISK_MB": "64", "AGENTCLOUD_SANDBOX_MAX_PIDS": "32", "AGENTCLOUD_SANDBOX_MAX_TIMEOUT": "10m",
		"AGENTCLOUD_SANDBOX_MAX_PER_OWNER": "3", "AGENTCLOUD_SANDBOX_POOL_PROCESS": "0", "AGENTCLOUD_SANDBOX_POOL_GVISOR": "0"}
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.SandboxPoolProcess != 0 || c.SandboxPoolGVisor != 0 {
		t.Fatalf("warm pools not applied: process %d, gvisor %d", c.SandboxPoolProcess, c.SandboxPoolGVisor)
	}
	if c.SandboxMaxCPUs != 0.5 || c.SandboxMaxMemoryMB != 256 || c.SandboxMaxDiskMB != 64 || c.SandboxMaxPids != 32 ||
		c.SandboxMaxTimeout.D() != 10*time.Minute || c.SandboxMaxPerOwner != 3 {
		t.Fatalf("sandbox caps not applied: %+v", c)
	}
	for _, tc := range []struct {
		env  string
		want int64
	}{{"0", -1}, {"64", 64 << 20}} {
		c := Default()
		if err := c.LoadEnv(func(k string) (string, bool) { return tc.env, k == "AGENTCLOUD_SESSION_READ_CACHE_MIB" }); err != nil {
			t.Fatal(err)
		}
		if got := c.SessionReadCacheBytes(); got != tc.want {
			t.Errorf("AGENTCLOUD_SESSION_READ_CACHE_MIB=%s: %d bytes, want %d", tc.env, got, tc.want)
		}
	}
	if d := Default(); d.SessionReadCacheBytes() != 160<<20 {
		t.Errorf("default read cache %d bytes", d.SessionReadCacheBytes())
	}
	for k, v := range map[string]string{"AGENTCLOUD_SESSION_READ_CACHE_MIB": "lots", "AGENTCLOUD_SANDBOX_POOL_GVISOR": "one", "AGENTCLOUD_SANDBOX_MAX_CPUS": "two", "AGENTCLOUD_SANDBOX_MAX_MEMORY_MB": "1G", "AGENTCLOUD_SANDBOX_MAX_TIMEOUT": "1 hour"} {
		err := c.LoadEnv(func(key string) (string, bool) { return v, key == k })
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: want an error naming the variable, got %v", k, v, err)
		}
	}
	env = map[string]string{"AGENTCLOUD_READ_TIMEOUT": "soon"}
	err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err == nil || !strings.Contains(err.Error(), "AGENTCLOUD_READ_TIMEOUT") {
		t.Fatalf("want error naming the variable, got %v", err)
	}
}

func FuzzConfigFile(f *testing.F) {
	f.Add(`{"listen":"127.0.0.1:1"}`)
	f.Add(`{"shutdown_timeout":"1s","max_body_bytes":5}`)
	f.Add(`[]`)
	f.Add(`{"sandbox_max_memory_mb":512,"sandbox_max_cpus":0.5,"sandbox_max_timeout":"30m"}`)
	f.Add(`{"sandbox_max_pids":-1,"sandbox_max_disk_mb":"big","sandbox_max_timeout":"forever"}`)
	f.Add(`{"gateway":{"levels":[{"name":"a","shares":1,"queues":4,"hand_size":2,"queue_length":1}],"flow_schemas":[{"name":"s","level":"a","precedence":1,"match":[{"paths":["/v1/**"]}]}]}}`)
	f.Add(`{"gateway":{"rate_limits":[{"name":"r","quota":1,"window":"1s","key":"identity+tool"}],"server":{"max_conns_per_ip":-1}}}`)
	f.Fuzz(func(t *testing.T, s string) {
		c := Default()
		if err := c.decode(strings.NewReader(s), "fuzz"); err != nil {
			return
		}
		_ = c.Validate() // must not panic
	})
}
