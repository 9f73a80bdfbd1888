package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestGatewayFieldErrorsClass: every invalid gateway setting is reported
// with its full field path and what is allowed.
func TestGatewayFieldErrorsClass(t *testing.T) {
	withLevels := func(f func(l *PriorityLevel)) func(c *Config) {
		return func(c *Config) {
			c.Gateway.Levels = DefaultLevels()
			f(&c.Gateway.Levels[1])
		}
	}
	neg := -1
	cases := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"classes", func(c *Config) { c.Gateway.Classes = "OFF" }, "gateway.classes"},
		{"classes word", func(c *Config) { c.Gateway.Classes = "maybe" }, "gateway.classes"},
		{"limit below levels", func(c *Config) { c.Gateway.Concurrency.Limit = 3; c.Gateway.Concurrency.Min = 3 }, "gateway.concurrency.limit"},
		{"adaptive min", func(c *Config) { c.Gateway.Concurrency.Min = 2 }, "gateway.concurrency.min"},
		{"adaptive max", func(c *Config) { c.Gateway.Concurrency.Max = 10 }, "gateway.concurrency.max"},
		{"tolerance", func(c *Config) { c.Gateway.Concurrency.Tolerance = 0.5 }, "gateway.concurrency.tolerance"},
		{"level name", withLevels(func(l *PriorityLevel) { l.Name = "Human" }), "gateway.levels[1].name"},
		{"duplicate level", withLevels(func(l *PriorityLevel) { l.Name = "system" }), "gateway.levels[1].name"},
		{"shares", withLevels(func(l *PriorityLevel) { l.Shares = 0 }), "gateway.levels[1].shares"},
		{"lendable", withLevels(func(l *PriorityLevel) { l.LendablePercent = 101 }), "gateway.levels[1].lendable_percent"},
		{"borrowing", withLevels(func(l *PriorityLevel) { l.BorrowingLimitPercent = &neg }), "gateway.levels[1].borrowing_limit_percent"},
		{"queues", withLevels(func(l *PriorityLevel) { l.Queues = 1000 }), "gateway.levels[1].queues"},
		{"hand size", withLevels(func(l *PriorityLevel) { l.HandSize = 65 }), "gateway.levels[1].hand_size"},
		{"hand entropy", withLevels(func(l *PriorityLevel) { l.Queues = 512; l.HandSize = 16 }), "gateway.levels[1].hand_size"},
		{"queue length", withLevels(func(l *PriorityLevel) { l.QueueLength = 0 }), "gateway.levels[1].queue_length"},
		{"queue timeout", withLevels(func(l *PriorityLevel) { l.QueueTimeout = Duration(time.Hour) }), "gateway.levels[1].queue_timeout"},
		{"schema level", func(c *Config) {
			c.Gateway.FlowSchemas = DefaultFlowSchemas()
			c.Gateway.FlowSchemas[2].Level = "nope"
		}, "gateway.flow_schemas[2].level"},
		{"schema kind", func(c *Config) {
			c.Gateway.FlowSchemas = DefaultFlowSchemas()
			c.Gateway.FlowSchemas[0].Match = []FlowMatch{{Kinds: []string{"robot"}}}
		}, "gateway.flow_schemas[0].match[0].kinds"},
		{"schema path", func(c *Config) {
			c.Gateway.FlowSchemas = DefaultFlowSchemas()
			c.Gateway.FlowSchemas[0].Match = []FlowMatch{{Paths: []string{"v1/x"}}}
		}, "gateway.flow_schemas[0].match[0].paths"},
		{"schema method", func(c *Config) {
			c.Gateway.FlowSchemas = DefaultFlowSchemas()
			c.Gateway.FlowSchemas[0].Match = []FlowMatch{{Methods: []string{"get"}}}
		}, "gateway.flow_schemas[0].match[0].methods"},
		{"schema pattern", func(c *Config) {
			c.Gateway.FlowSchemas = DefaultFlowSchemas()
			c.Gateway.FlowSchemas[0].Match = []FlowMatch{{Identities: []string{"a b"}}}
		}, "gateway.flow_schemas[0].match[0].identities"},
		{"rate window", func(c *Config) {
			c.Gateway.RateLimits = DefaultRateLimits()
			c.Gateway.RateLimits[0].Window = Duration(1500 * time.Millisecond)
		}, "gateway.rate_limits[0].window"},
		{"rate key", func(c *Config) {
			c.Gateway.RateLimits = DefaultRateLimits()
			c.Gateway.RateLimits[1].Key = "ip"
		}, "gateway.rate_limits[1].key"},
		{"rate quota", func(c *Config) {
			c.Gateway.RateLimits = DefaultRateLimits()
			c.Gateway.RateLimits[2].Quota = 0
		}, "gateway.rate_limits[2].quota"},
		{"mcp path", func(c *Config) { c.Gateway.MCP.Path = "mcp" }, "gateway.mcp.path"},
		{"wba max age", func(c *Config) { c.Gateway.WebBotAuth.MaxAge = 0 }, "gateway.web_bot_auth.max_age"},
		{"wba directory bytes", func(c *Config) { c.Gateway.WebBotAuth.MaxDirectoryBytes = 10 }, "gateway.web_bot_auth.max_directory_bytes"},
		{"conns per ip", func(c *Config) { c.Gateway.Server.MaxConnsPerIP = -1 }, "gateway.server.max_conns_per_ip"},
		{"conns total", func(c *Config) { c.Gateway.Server.MaxConns = 10 }, "gateway.server.max_conns"},
		{"header timeout", func(c *Config) { c.Gateway.Server.ReadHeaderTimeout = 0 }, "gateway.server.read_header_timeout"},
		{"header bytes", func(c *Config) { c.Gateway.Server.MaxHeaderBytes = 100 }, "gateway.server.max_header_bytes"},
		{"long running", func(c *Config) { c.Gateway.LongRunning = []FlowMatch{{Paths: []string{"exec"}}} }, "gateway.long_running[0].paths"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			var errs Errors
			err := c.Validate()
			if !errors.As(err, &errs) {
				t.Fatalf("want an error on %s, got %v", tc.field, err)
			}
			for _, e := range errs {
				if e.Field == tc.field && e.Detail != "" {
					return
				}
			}
			t.Fatalf("no error on %s in %v", tc.field, err)
		})
	}
}

func TestGatewayFromFileAndEnv(t *testing.T) {
	c := Default()
	file := `{"gateway": {
		"concurrency": {"limit": 8, "adaptive": false},
		"levels": [{"name": "fast", "shares": 1, "queues": 4, "hand_size": 2, "queue_length": 10, "queue_timeout": "2s"},
		           {"name": "slow", "shares": 1}],
		"flow_schemas": [{"name": "all", "level": "slow", "precedence": 1}],
		"server": {"max_conns_per_ip": 4}
	}}`
	if err := c.decode(strings.NewReader(file), "test"); err != nil {
		t.Fatal(err)
	}
	if err := c.LoadEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"AGENTCLOUD_GATEWAY_MAX_CONNS_PER_IP": "9", "AGENTCLOUD_GATEWAY_ADAPTIVE": "false"}[k]
		return v, ok
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g := c.Gateway.Effective()
	if len(g.Levels) != 2 || g.Levels[0].QueueTimeout.D() != 2*time.Second || len(g.RateLimits) != 3 || g.Server.MaxConnsPerIP != 9 {
		t.Fatalf("effective gateway %+v", g)
	}
	// Unknown keys in the gateway section are refused, like everywhere.
	c = Default()
	if err := c.decode(strings.NewReader(`{"gateway":{"levls":[]}}`), "test"); err == nil {
		t.Fatal("unknown gateway key accepted")
	}
	if err := c.LoadEnv(func(k string) (string, bool) {
		return "soon", k == "AGENTCLOUD_GATEWAY_READ_HEADER_TIMEOUT"
	}); err == nil || !strings.Contains(err.Error(), "AGENTCLOUD_GATEWAY_READ_HEADER_TIMEOUT") {
		t.Fatalf("bad env: %v", err)
	}
}

// TestGatewayClassesOffClass: classes "off" (file or environment) leaves
// one fairly queued level that every request goes to, whatever levels and
// schemas were configured; "on" and "" keep the classes.
func TestGatewayClassesOffClass(t *testing.T) {
	for _, v := range []string{"", "on"} {
		g := DefaultGateway()
		g.Classes = v
		if err := g.Validate(); err != nil || len(g.Effective().Levels) != 5 {
			t.Errorf("classes %q: %v, %d levels", v, err, len(g.Effective().Levels))
		}
	}
	c := Default()
	c.Gateway.Levels = DefaultLevels()[:2]
	if err := c.LoadEnv(func(k string) (string, bool) { return "off", k == "AGENTCLOUD_GATEWAY_CLASSES" }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	e := c.Gateway.Effective()
	if len(e.Levels) != 1 || e.Levels[0].Name != "all" || e.Levels[0].Queues < 2 || len(e.FlowSchemas) != 1 || e.FlowSchemas[0].Level != "all" {
		t.Fatalf("classes off: %+v %+v", e.Levels, e.FlowSchemas)
	}
}
