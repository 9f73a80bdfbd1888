package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Gateway configures the front door (internal/gateway): how requests are
// identified and classified into priority levels, the fair queues and
// limits of each level, rate limits, Web Bot Auth, and the HTTP server's
// limits against hostile clients. Nil lists take the built-in defaults
// (DefaultLevels, DefaultFlowSchemas, DefaultRateLimits, DefaultLongRunning);
// a list given in the config file replaces its default entirely.
type Gateway struct {
	// Classes is "on" (the default; "" means on) or "off": off puts every
	// request in one priority level, "all", with fair queuing across
	// flows but no classes (levels and flow_schemas are then unused).
	Classes     string             `json:"classes,omitempty"`
	Concurrency GatewayConcurrency `json:"concurrency"`
	Levels      []PriorityLevel    `json:"levels,omitempty"`
	FlowSchemas []FlowSchema       `json:"flow_schemas,omitempty"`
	RateLimits  []RateLimit        `json:"rate_limits,omitempty"`
	// LongRunning requests (streams) are classified and rate limited but
	// hold no seat, so they cannot starve their level.
	LongRunning []FlowMatch  `json:"long_running,omitempty"`
	MCP         GatewayMCP   `json:"mcp"`
	WebBotAuth  WebBotAuth   `json:"web_bot_auth"`
	Server      ServerLimits `json:"server"`
}

// GatewayConcurrency is the total of seats: fixed at Limit, or adaptive
// between Min and Max starting at Limit.
type GatewayConcurrency struct {
	Limit    int  `json:"limit"`
	Adaptive bool `json:"adaptive"`
	Min      int  `json:"min"`
	Max      int  `json:"max"`
	// Tolerance is how far service times may grow over the no-load
	// baseline before the adaptive limit shrinks (1.5 = by half).
	Tolerance float64 `json:"tolerance"`
}

// PriorityLevel is one traffic class with its part of the seats and its
// queues.
type PriorityLevel struct {
	Name   string `json:"name"`
	Exempt bool   `json:"exempt,omitempty"`
	Shares int    `json:"shares"`
	// LendablePercent of the level's seats may be lent while it is idle.
	LendablePercent int `json:"lendable_percent"`
	// BorrowingLimitPercent caps borrowing (percent of the level's own
	// seats); absent means no cap.
	BorrowingLimitPercent *int     `json:"borrowing_limit_percent,omitempty"`
	Queues                int      `json:"queues"`
	HandSize              int      `json:"hand_size"`
	QueueLength           int      `json:"queue_length"`
	QueueTimeout          Duration `json:"queue_timeout"`
}

// FlowSchema sends matching requests to a level. The schema with the
// lowest precedence that matches wins; a request no schema matches goes to
// the last level.
type FlowSchema struct {
	Name       string `json:"name"`
	Level      string `json:"level"`
	Precedence int    `json:"precedence"`
	// Match: any entry matching is enough; no entries match everything.
	Match []FlowMatch `json:"match,omitempty"`
}

// FlowMatch matches a request when every non-empty field matches (any of
// its values). Patterns use * for any run of characters other than "/"
// and ** for any run at all.
type FlowMatch struct {
	// Kinds of caller: admin, node, user, agent, session, sandbox, bot
	// (a verified Web Bot Auth signer) or anonymous.
	Kinds []string `json:"kinds,omitempty"`
	// Identities are SPIFFE ID patterns (or "ip:ADDRESS" for anonymous).
	Identities []string `json:"identities,omitempty"`
	// Signers are Web Bot Auth signer patterns (their directory URL).
	Signers    []string `json:"signers,omitempty"`
	Methods    []string `json:"methods,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	MCPMethods []string `json:"mcp_methods,omitempty"`
	Tools      []string `json:"tools,omitempty"`
}

// RateLimit is Quota requests per Window (the whole quota may come as one
// burst) for each key: one identity, or one identity and one tool.
type RateLimit struct {
	Name   string      `json:"name"`
	Quota  int         `json:"quota"`
	Window Duration    `json:"window"`
	Key    string      `json:"key"`
	Match  []FlowMatch `json:"match,omitempty"`
}

// GatewayMCP is where the gateway peeks at JSON-RPC bodies.
type GatewayMCP struct {
	Path      string `json:"path"`
	PeekBytes int    `json:"peek_bytes"`
}

// WebBotAuth configures verification of signed bot requests.
type WebBotAuth struct {
	Enabled           bool     `json:"enabled"`
	MaxAge            Duration `json:"max_age"`
	MaxLifetime       Duration `json:"max_lifetime"`
	ClockSkew         Duration `json:"clock_skew"`
	RequireNonce      bool     `json:"require_nonce"`
	AllowUnprovenKeys bool     `json:"allow_unproven_keys"`
	DirectoryTTL      Duration `json:"directory_ttl"`
	FetchTimeout      Duration `json:"fetch_timeout"`
	MaxDirectoryBytes int      `json:"max_directory_bytes"`
	FetchesPerMinute  int      `json:"fetches_per_minute"`
}

// ServerLimits protect the HTTP server from hostile clients.
type ServerLimits struct {
	// MaxConnsPerIP and MaxConns cap open connections (0 = no cap).
	MaxConnsPerIP int `json:"max_conns_per_ip"`
	MaxConns      int `json:"max_conns"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris);
	// IdleTimeout closes idle keep-alive connections.
	ReadHeaderTimeout Duration `json:"read_header_timeout"`
	IdleTimeout       Duration `json:"idle_timeout"`
	MaxHeaderBytes    int      `json:"max_header_bytes"`
	// MaxConcurrentStreams caps HTTP/2 streams per connection.
	MaxConcurrentStreams int `json:"max_concurrent_streams"`
}

// DefaultGateway is the gateway's defaults (lists nil: see Gateway).
func DefaultGateway() Gateway {
	return Gateway{
		Concurrency: GatewayConcurrency{Limit: 64, Adaptive: true, Min: 16, Max: 1024, Tolerance: 1.5},
		MCP:         GatewayMCP{Path: "/mcp", PeekBytes: 16 << 10},
		WebBotAuth: WebBotAuth{Enabled: true, MaxAge: Duration(5 * time.Minute), MaxLifetime: Duration(24 * time.Hour),
			ClockSkew: Duration(time.Minute), DirectoryTTL: Duration(time.Hour), FetchTimeout: Duration(5 * time.Second),
			MaxDirectoryBytes: 64 << 10, FetchesPerMinute: 60},
		Server: ServerLimits{MaxConnsPerIP: 256, MaxConns: 16384, ReadHeaderTimeout: Duration(10 * time.Second),
			IdleTimeout: Duration(2 * time.Minute), MaxHeaderBytes: 64 << 10, MaxConcurrentStreams: 250},
	}
}

func intp(n int) *int { return &n }

// DefaultLevels are the five default priority levels, most important first.
func DefaultLevels() []PriorityLevel {
	return []PriorityLevel{
		{Name: "system", Shares: 20, LendablePercent: 50, Queues: 16, HandSize: 4, QueueLength: 50, QueueTimeout: Duration(10 * time.Second)},
		{Name: "human-interactive", Shares: 40, LendablePercent: 50, Queues: 64, HandSize: 6, QueueLength: 50, QueueTimeout: Duration(5 * time.Second)},
		{Name: "agent-interactive", Shares: 30, LendablePercent: 50, Queues: 64, HandSize: 6, QueueLength: 50, QueueTimeout: Duration(10 * time.Second)},
		{Name: "agent-batch", Shares: 20, LendablePercent: 90, Queues: 128, HandSize: 8, QueueLength: 100, QueueTimeout: Duration(30 * time.Second)},
		{Name: "anonymous", Shares: 10, LendablePercent: 50, BorrowingLimitPercent: intp(0), Queues: 16, HandSize: 4, QueueLength: 20, QueueTimeout: Duration(5 * time.Second)},
	}
}

// DefaultFlowSchemas classify by the kind of caller.
func DefaultFlowSchemas() []FlowSchema {
	return []FlowSchema{
		// Probes and metrics stay reachable under a flood of any other
		// kind: they cost little and tell operators what is going on.
		{Name: "probes", Level: "system", Precedence: 50, Match: []FlowMatch{{Methods: []string{"GET", "HEAD"}, Paths: []string{"/healthz", "/readyz", "/metrics"}}}},
		{Name: "system", Level: "system", Precedence: 100, Match: []FlowMatch{{Kinds: []string{"admin", "node"}}}},
		{Name: "humans", Level: "human-interactive", Precedence: 200, Match: []FlowMatch{{Kinds: []string{"user"}}}},
		{Name: "agents", Level: "agent-interactive", Precedence: 300, Match: []FlowMatch{{Kinds: []string{"agent", "session"}}}},
		{Name: "batch", Level: "agent-batch", Precedence: 400, Match: []FlowMatch{{Kinds: []string{"sandbox", "bot"}}}},
		{Name: "catch-all", Level: "anonymous", Precedence: 10000},
	}
}

// DefaultRateLimits: per identity, per anonymous address, per tool.
func DefaultRateLimits() []RateLimit {
	return []RateLimit{
		{Name: "identity", Quota: 100, Window: Duration(time.Second), Key: "identity",
			Match: []FlowMatch{{Kinds: []string{"user", "agent", "session", "sandbox", "bot"}}}},
		{Name: "anonymous", Quota: 20, Window: Duration(time.Second), Key: "identity", Match: []FlowMatch{{Kinds: []string{"anonymous"}}}},
		{Name: "tool", Quota: 30, Window: Duration(time.Second), Key: "identity+tool", Match: []FlowMatch{{MCPMethods: []string{"tools/call"}}}},
	}
}

// DefaultLongRunning are the streaming routes.
func DefaultLongRunning() []FlowMatch {
	return []FlowMatch{{Methods: []string{"POST"}, Paths: []string{"/v1/sandboxes/*/exec"}}}
}

// ClassesOffLevel is the one priority level of a gateway with classes off.
func ClassesOffLevel() PriorityLevel {
	return PriorityLevel{Name: "all", Shares: 1, Queues: 64, HandSize: 8, QueueLength: 100, QueueTimeout: Duration(10 * time.Second)}
}

// Effective returns g with nil lists replaced by their defaults, and with
// classes off, its one level and one flow schema.
func (g Gateway) Effective() Gateway {
	if g.Classes == "off" {
		g.Levels = []PriorityLevel{ClassesOffLevel()}
		g.FlowSchemas = []FlowSchema{{Name: "all", Level: "all", Precedence: 1}}
	}
	if g.Levels == nil {
		g.Levels = DefaultLevels()
	}
	if g.FlowSchemas == nil {
		g.FlowSchemas = DefaultFlowSchemas()
	}
	if g.RateLimits == nil {
		g.RateLimits = DefaultRateLimits()
	}
	if g.LongRunning == nil {
		g.LongRunning = DefaultLongRunning()
	}
	return g
}

var (
	levelName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	httpToken = regexp.MustCompile(`^[A-Z]{1,16}$`)
	kinds     = map[string]bool{"admin": true, "node": true, "user": true, "agent": true, "session": true, "sandbox": true, "bot": true, "anonymous": true}
)

// Validate checks the gateway section alone; errors name fields as
// "gateway.levels[1].shares".
func (g Gateway) Validate() error {
	var errs Errors
	g.validate(func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) })
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// validate reports the gateway's invalid settings through add.
func (g Gateway) validate(add func(field, value, detail string)) {
	if g.Classes != "" && g.Classes != "on" && g.Classes != "off" {
		add("gateway.classes", g.Classes, "want on or off")
	}
	g = g.Effective()
	c := g.Concurrency
	limited := 0
	for _, l := range g.Levels {
		if !l.Exempt {
			limited++
		}
	}
	if c.Limit < 1 || c.Limit > 100000 || c.Limit < limited {
		add("gateway.concurrency.limit", strconv.Itoa(c.Limit), fmt.Sprintf("want %d (one seat per limited level) to 100000", limited))
	}
	if c.Adaptive {
		if c.Min < limited || c.Min > c.Limit {
			add("gateway.concurrency.min", strconv.Itoa(c.Min), fmt.Sprintf("want from %d (one seat per limited level) to limit %d", limited, c.Limit))
		}
		if c.Max < c.Limit || c.Max > 1_000_000 {
			add("gateway.concurrency.max", strconv.Itoa(c.Max), fmt.Sprintf("want from limit %d to 1000000", c.Limit))
		}
		if !(c.Tolerance >= 1 && c.Tolerance <= 10) {
			add("gateway.concurrency.tolerance", strconv.FormatFloat(c.Tolerance, 'g', -1, 64), "want from 1 to 10 (1.5: shrink when service times grow by half)")
		}
	}
	names := map[string]bool{}
	if len(g.Levels) == 0 || len(g.Levels) > 32 {
		add("gateway.levels", strconv.Itoa(len(g.Levels)), "want 1 to 32 priority levels")
	}
	for i, l := range g.Levels {
		at := fmt.Sprintf("gateway.levels[%d]", i)
		if !levelName.MatchString(l.Name) {
			add(at+".name", l.Name, "want a lowercase name of a-z 0-9 - (at most 63)")
		} else if names[l.Name] {
			add(at+".name", l.Name, "is used by another level")
		}
		names[l.Name] = true
		if l.Exempt {
			continue
		}
		if l.Shares < 1 || l.Shares > 10000 {
			add(at+".shares", strconv.Itoa(l.Shares), "want 1 to 10000")
		}
		if l.LendablePercent < 0 || l.LendablePercent > 100 {
			add(at+".lendable_percent", strconv.Itoa(l.LendablePercent), "want 0 to 100")
		}
		if b := l.BorrowingLimitPercent; b != nil && (*b < 0 || *b > 10000) {
			add(at+".borrowing_limit_percent", strconv.Itoa(*b), "want 0 to 10000, or leave it out for no cap")
		}
		if l.Queues < 0 || l.Queues > 512 {
			add(at+".queues", strconv.Itoa(l.Queues), "want 0 (refuse when no seat is free) to 512")
		}
		if l.Queues > 0 {
			if l.HandSize < 1 || l.HandSize > l.Queues || l.HandSize > 16 || !dealable(l.Queues, l.HandSize) {
				add(at+".hand_size", strconv.Itoa(l.HandSize), fmt.Sprintf("want 1 to min(queues %d, 16), with queues^hand_size below 2^64", l.Queues))
			}
			if l.QueueLength < 1 || l.QueueLength > 10000 {
				add(at+".queue_length", strconv.Itoa(l.QueueLength), "want 1 to 10000")
			}
		}
		if d := l.QueueTimeout.D(); d < 0 || d > 10*time.Minute {
			add(at+".queue_timeout", l.QueueTimeout.String(), "want 0 (no timeout) to 10m")
		}
	}
	seen := map[string]bool{}
	for i, s := range g.FlowSchemas {
		at := fmt.Sprintf("gateway.flow_schemas[%d]", i)
		if !levelName.MatchString(s.Name) || seen[s.Name] {
			add(at+".name", s.Name, "want a unique lowercase name of a-z 0-9 -")
		}
		seen[s.Name] = true
		if !names[s.Level] {
			add(at+".level", s.Level, "names no level in gateway.levels")
		}
		if s.Precedence < 1 || s.Precedence > 100000 {
			add(at+".precedence", strconv.Itoa(s.Precedence), "want 1 to 100000 (lower is tried first)")
		}
		validateMatches(at+".match", s.Match, add)
	}
	seen = map[string]bool{}
	for i, r := range g.RateLimits {
		at := fmt.Sprintf("gateway.rate_limits[%d]", i)
		if !levelName.MatchString(r.Name) || seen[r.Name] {
			add(at+".name", r.Name, "want a unique lowercase name of a-z 0-9 - (it names the policy in RateLimit-Policy)")
		}
		seen[r.Name] = true
		if r.Quota < 1 || r.Quota > 1_000_000_000 {
			add(at+".quota", strconv.Itoa(r.Quota), "want 1 to 1000000000")
		}
		if w := r.Window.D(); w < time.Second || w > 24*time.Hour || w%time.Second != 0 {
			add(at+".window", r.Window.String(), "want whole seconds from 1s to 24h")
		}
		if r.Key != "identity" && r.Key != "identity+tool" {
			add(at+".key", r.Key, "want identity or identity+tool")
		}
		validateMatches(at+".match", r.Match, add)
	}
	validateMatches("gateway.long_running", g.LongRunning, add)
	if !strings.HasPrefix(g.MCP.Path, "/") {
		add("gateway.mcp.path", g.MCP.Path, "want an absolute path such as /mcp")
	}
	if n := g.MCP.PeekBytes; n < 0 || n > 1<<20 {
		add("gateway.mcp.peek_bytes", strconv.Itoa(n), "want 0 (do not peek) to 1048576")
	}
	w := g.WebBotAuth
	dur := func(field string, d Duration, min, max time.Duration) {
		if d.D() < min || d.D() > max {
			add("gateway.web_bot_auth."+field, d.String(), fmt.Sprintf("want %s to %s", min, max))
		}
	}
	dur("max_age", w.MaxAge, time.Second, time.Hour)
	dur("max_lifetime", w.MaxLifetime, time.Second, 7*24*time.Hour)
	dur("clock_skew", w.ClockSkew, 0, 10*time.Minute)
	dur("directory_ttl", w.DirectoryTTL, time.Minute, 24*time.Hour)
	dur("fetch_timeout", w.FetchTimeout, 100*time.Millisecond, time.Minute)
	if n := w.MaxDirectoryBytes; n < 1024 || n > 1<<20 {
		add("gateway.web_bot_auth.max_directory_bytes", strconv.Itoa(n), "want 1024 to 1048576")
	}
	if n := w.FetchesPerMinute; n < 1 || n > 100000 {
		add("gateway.web_bot_auth.fetches_per_minute", strconv.Itoa(n), "want 1 to 100000")
	}
	s := g.Server
	if n := s.MaxConnsPerIP; n < 0 || n > 1_000_000 {
		add("gateway.server.max_conns_per_ip", strconv.Itoa(n), "want 0 (no cap) to 1000000")
	}
	if n := s.MaxConns; n < 0 || n > 10_000_000 || n > 0 && n < s.MaxConnsPerIP {
		add("gateway.server.max_conns", strconv.Itoa(n), "want 0 (no cap), or at least max_conns_per_ip, up to 10000000")
	}
	if d := s.ReadHeaderTimeout.D(); d < 100*time.Millisecond || d > 5*time.Minute {
		add("gateway.server.read_header_timeout", s.ReadHeaderTimeout.String(), "want 100ms to 5m")
	}
	if d := s.IdleTimeout.D(); d < time.Second || d > time.Hour {
		add("gateway.server.idle_timeout", s.IdleTimeout.String(), "want 1s to 1h")
	}
	if n := s.MaxHeaderBytes; n < 4096 || n > 1<<20 {
		add("gateway.server.max_header_bytes", strconv.Itoa(n), "want 4096 to 1048576")
	}
	if n := s.MaxConcurrentStreams; n < 1 || n > 10000 {
		add("gateway.server.max_concurrent_streams", strconv.Itoa(n), "want 1 to 10000")
	}
}

func validateMatches(at string, ms []FlowMatch, add func(field, value, detail string)) {
	for i, m := range ms {
		f := fmt.Sprintf("%s[%d]", at, i)
		for _, k := range m.Kinds {
			if !kinds[k] {
				add(f+".kinds", k, "want admin, node, user, agent, session, sandbox, bot or anonymous")
			}
		}
		for _, v := range m.Methods {
			if !httpToken.MatchString(v) {
				add(f+".methods", v, "want an upper-case HTTP method such as GET")
			}
		}
		for _, p := range m.Paths {
			if !strings.HasPrefix(p, "/") {
				add(f+".paths", p, "want a path pattern starting with /")
			}
		}
		for field, list := range map[string][]string{"identities": m.Identities, "signers": m.Signers, "paths": m.Paths, "mcp_methods": m.MCPMethods, "tools": m.Tools} {
			for _, p := range list {
				if p == "" || len(p) > 512 || strings.ContainsAny(p, "\x00\r\n\t ") || !utf8.ValidString(p) {
					add(f+"."+field, p, "want a non-empty UTF-8 pattern of at most 512 bytes without spaces or control characters")
				}
			}
		}
	}
}

// dealable reports whether 64 bits can deal hand distinct queues of deck.
func dealable(deck, hand int) bool {
	bits := 0.0
	for i := 0; i < hand; i++ {
		bits += math.Log2(float64(deck - i))
	}
	return bits <= 64
}

// loadGatewayEnv reads the gateway's AGENTCLOUD_GATEWAY_* variables.
func (c *Config) loadGatewayEnv(lookup func(string) (string, bool), errs *Errors) {
	g := &c.Gateway
	num := func(name string, dst *int) {
		if v, ok := lookup("AGENTCLOUD_GATEWAY_" + name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				*errs = append(*errs, FieldError{"AGENTCLOUD_GATEWAY_" + name, v, "want a whole number"})
			}
			*dst = n
		}
	}
	boolean := func(name string, dst *bool) {
		if v, ok := lookup("AGENTCLOUD_GATEWAY_" + name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				*errs = append(*errs, FieldError{"AGENTCLOUD_GATEWAY_" + name, v, "want true or false"})
			}
			*dst = b
		}
	}
	if v, ok := lookup("AGENTCLOUD_GATEWAY_CLASSES"); ok {
		g.Classes = v // validated with the rest
	}
	num("CONCURRENCY_LIMIT", &g.Concurrency.Limit)
	boolean("ADAPTIVE", &g.Concurrency.Adaptive)
	num("MAX_CONNS_PER_IP", &g.Server.MaxConnsPerIP)
	num("MAX_CONNS", &g.Server.MaxConns)
	boolean("WEB_BOT_AUTH", &g.WebBotAuth.Enabled)
	if v, ok := lookup("AGENTCLOUD_GATEWAY_READ_HEADER_TIMEOUT"); ok {
		if err := g.Server.ReadHeaderTimeout.Set(v); err != nil {
			*errs = append(*errs, FieldError{"AGENTCLOUD_GATEWAY_READ_HEADER_TIMEOUT", v, err.Error()})
		}
	}
}
