// Package config defines the daemon's configuration: defaults, an optional
// JSON config file, AGENTCLOUD_* environment variables and command-line flags,
// merged in that order (later wins) and validated in one step. Errors name the
// field and what is allowed. It does not start anything.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/strictjson"
)

// Config is the daemon's configuration. JSON names are the config file keys;
// the env var for a field is AGENTCLOUD_ plus the upper-cased JSON name.
type Config struct {
	// Data is the data directory.
	Data string `json:"data"`
	// Listen is the HTTP API address.
	Listen string `json:"listen"`
	// NATSListen exposes the embedded NATS server on this address ("" = none).
	NATSListen string `json:"nats_listen"`
	// NATSNKeyFile is the nkey user seed: with nats_listen, the one user
	// the listener admits (default <data>/nats/user.nk, created if
	// absent); with nats_url, the credentials the node connects with.
	NATSNKeyFile string `json:"nats_nkey_file"`
	// NATSURL uses an external NATS server instead of the embedded one.
	NATSURL string `json:"nats_url"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is auto (text on a terminal, JSON otherwise), text or json.
	LogFormat string `json:"log_format"`
	// ShutdownTimeout bounds how long in-flight requests may finish.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// ReadTimeout and WriteTimeout bound one request.
	ReadTimeout  Duration `json:"read_timeout"`
	WriteTimeout Duration `json:"write_timeout"`
	// NodeID names this node (default: hostname).
	NodeID string `json:"node_id"`
	// SessionMemoryMiB is the budget for live session isolates; least
	// recently used sessions hibernate past it.
	SessionMemoryMiB int `json:"session_memory_mib"`
	// SessionReadCacheMiB is the memory a single node keeps of the session
	// records and heaps it wrote, so activations skip cold store blocks
	// (store read cache; a fifth for records); 0 turns it off.
	SessionReadCacheMiB int `json:"session_read_cache_mib"`
	// SessionMaxBodyBytes caps every body into or out of a session (HTTP
	// requests and responses, call_agent, fetch responses, host-call
	// arguments), enforced while reading and, for what agent code
	// produces, by length before the host copies it.
	SessionMaxBodyBytes int64 `json:"session_max_body_bytes"`
	// WebSockets bounds the WebSockets sessions hold (websocket.go).
	WebSockets WebSocketConfig `json:"websockets"`
	// Logs bounds the log streams of live sessions (logs.go).
	Logs LogConfig `json:"logs"`
	// Cache bounds the node's Cache API storage (cache.go).
	Cache CacheConfig `json:"cache"`
	// Images bounds sandbox image templates (images.go).
	Images ImageConfig `json:"images"`
	// Volumes bounds named sandbox volumes (volumes.go).
	Volumes VolumeConfig `json:"volumes"`
	// Tracing exports OpenTelemetry traces over OTLP/HTTP (tracing.go);
	// off by default.
	Tracing TracingConfig `json:"tracing"`
	// AgentInitTimeout caps agent initialisation (module top level, wasm
	// _initialize, template builds, activations) below each manifest's
	// wall_ms.
	AgentInitTimeout Duration `json:"agent_init_timeout"`
	// SandboxPoolProcess and SandboxPoolGVisor are warm sandboxes kept
	// ready per tier (host template); 0 = no pool. Defaults 2 and 1 (a
	// gVisor sandbox costs more memory idle). A process-tier pool may be
	// sized for bursts (up to MaxSandboxPoolProcess; an idle one costs a
	// few MiB): the daemon caps it to a quarter of the memory available
	// at start and refills it with one preparer per core.
	SandboxPoolProcess int `json:"sandbox_pool_process"`
	SandboxPoolGVisor  int `json:"sandbox_pool_gvisor"`
	// ToolCallsPerSecond and ToolCallBurst are the token bucket of tool
	// calls per agent (or per principal for callers that are not agent
	// code); 0 calls per second means no limit.
	ToolCallsPerSecond float64 `json:"tool_calls_per_second"`
	ToolCallBurst      int     `json:"tool_call_burst"`
	// SandboxMaxPerOwner caps the live sandboxes of one owner (a user, or
	// an agent's owner for its sessions' sandboxes); administrators are
	// exempt. 0 = no cap.
	SandboxMaxPerOwner int `json:"sandbox_max_per_owner"`
	// SandboxMax* cap what a non-administrator may ask of each sandbox
	// (the owner's, as for SandboxMaxPerOwner): CPUs, memory, disk (each of
	// /workspace and /tmp), processes, and lifetime (at creation and per
	// extension). A request over a cap is refused, naming the field and
	// the cap; an omitted value whose default is over the cap gets the
	// cap. Administrators are exempt. 0 = no cap.
	SandboxMaxCPUs     float64  `json:"sandbox_max_cpus"`
	SandboxMaxMemoryMB int      `json:"sandbox_max_memory_mb"`
	SandboxMaxDiskMB   int      `json:"sandbox_max_disk_mb"`
	SandboxMaxPids     int      `json:"sandbox_max_pids"`
	SandboxMaxTimeout  Duration `json:"sandbox_max_timeout"`

	// SandboxMaxSnapshots and SandboxMaxSnapshotMB cap each owner's
	// sandbox snapshots: how many, and the disk they take in MiB
	// (administrators are exempt; 0 = no cap).
	SandboxMaxSnapshots  int `json:"sandbox_max_snapshots"`
	SandboxMaxSnapshotMB int `json:"sandbox_max_snapshot_mb"`

	// TLS serves the API over TLS with a node SVID from the platform CA;
	// clients may then authenticate with their own SVID (mTLS).
	TLS bool `json:"tls"`
	// RequireClientCert refuses TLS clients without a client SVID (needs TLS).
	RequireClientCert bool `json:"require_client_cert"`
	// TLSNames are extra DNS names and IP addresses the node certificate
	// covers, besides localhost, the node ID and the listen address (every
	// local address for 0.0.0.0 or ::). Needs TLS; not with TLSCert.
	TLSNames []string `json:"tls_names"`
	// TLSCert and TLSKey are PEM files of an operator's own server
	// certificate (chain first) and key, served instead of the node
	// certificate and re-read when they change. Client certificates are
	// still verified against the platform CA. Need TLS.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	// HTTP3 also serves the API over HTTP/3 (QUIC) on UDP at the listen
	// host:port, announced with Alt-Svc. Needs TLS.
	HTTP3 bool `json:"http3"`
	// TrustDomain is the SPIFFE trust domain of this platform.
	TrustDomain string `json:"trust_domain"`
	// CADir holds the CA's root and keys (default <data>/ca). A root
	// supplied there (ca.crt and ca.key) is used instead of a generated one.
	CADir string `json:"ca_dir"`
	// WasmCacheDir holds compiled WebAssembly (QuickJS and wasm agents),
	// keyed by module hash and runtime version, so it is safe to share
	// between data dirs and daemons (default: the user cache dir, else
	// <data>/wasm-cache).
	WasmCacheDir string `json:"wasm_cache_dir"`
	// AuditMaxAge and AuditMaxBytes are the audit stream's retention: the
	// oldest records are dropped past either (0 = no limit).
	AuditMaxAge   Duration `json:"audit_max_age"`
	AuditMaxBytes int64    `json:"audit_max_bytes"`
	// AuditAuthFailuresPerMinute is how many failed authentications from
	// one remote address are audited one by one per minute; the rest are
	// counted into one summary record.
	AuditAuthFailuresPerMinute int `json:"audit_auth_failures_per_minute"`
	// Rollout* configure gradual rollouts (rollout.go): the default steps
	// (an agent's manifest may give its own; the default "100%" releases a
	// version at once, e.g. "10%:5m,50%:10m,100%" rolls out gradually) and
	// the analysis that rolls a new version back when it does worse than
	// the stable one.
	RolloutSteps                string   `json:"rollout_steps"`
	RolloutMinCalls             int      `json:"rollout_min_calls"`
	RolloutMaxErrorRateIncrease float64  `json:"rollout_max_error_rate_increase"`
	RolloutMaxP99Ratio          float64  `json:"rollout_max_p99_ratio"`
	RolloutP99Slack             Duration `json:"rollout_p99_slack"`
	RolloutInterval             Duration `json:"rollout_interval"`
	// AgentVersionsKept is how many versions of each agent are kept; older
	// ones are pruned, never the stable or canary version.
	AgentVersionsKept int `json:"agent_versions_kept"`
	// Gateway is the front door: traffic classes, fair queuing, rate
	// limits, Web Bot Auth and hostile-client limits (gateway.go).
	Gateway Gateway `json:"gateway"`
	// EgressLoopbackHosts are "NAME" or "NAME=ADDR" entries: the egress
	// proxy resolves NAME to the loopback address ADDR (default 127.0.0.1)
	// and lets requests to it through, for stand-in upstreams on this
	// machine in benchmarks and local test benches. Only these names reach
	// loopback; the daemon's own ports stay refused. Refused unless listen
	// is a loopback address (egress.go).
	EgressLoopbackHosts []string `json:"egress_loopback_hosts"`
	// EgressUpstreamCAFile is a PEM file of CA certificates the egress
	// proxy trusts for upstream HTTPS besides the system roots (a private
	// CA, or the stand-ins' CA in a test bench).
	EgressUpstreamCAFile string `json:"egress_upstream_ca_file"`
	// EgressSignatureAgent, an https origin, turns on Web Bot Auth for
	// agents' outbound requests: the egress proxy signs them with the
	// node's key (a key per tenant) and this origin in Signature-Agent;
	// the origin must serve the node's key directory (egress.go).
	EgressSignatureAgent string `json:"egress_signature_agent,omitempty"`
	// ClusterConfig makes the node a cluster member (cluster.go).
	ClusterConfig
}

// MaxSandboxPoolProcess bounds sandbox_pool_process.
const MaxSandboxPoolProcess = 1024

// Default returns the embedded single-node defaults.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	return Config{
		Data:                "./agentcloud-data",
		Listen:              "127.0.0.1:7070",
		LogLevel:            "info",
		LogFormat:           "auto",
		ShutdownTimeout:     Duration(10 * time.Second),
		MaxBodyBytes:        16 << 20,
		ReadTimeout:         Duration(60 * time.Second),
		WriteTimeout:        Duration(5 * time.Minute),
		NodeID:              host,
		SessionMemoryMiB:    4096,
		SessionReadCacheMiB: 160,
		SandboxPoolProcess:  2,
		SandboxPoolGVisor:   1,
		ToolCallsPerSecond:  200,
		ToolCallBurst:       400,
		SandboxMaxPerOwner:  32,
		SandboxMaxCPUs:      2,
		SandboxMaxMemoryMB:  2048,
		SandboxMaxDiskMB:    1024,
		SandboxMaxPids:      1024,
		SandboxMaxTimeout:   Duration(4 * time.Hour),

		SandboxMaxSnapshots:  16,
		SandboxMaxSnapshotMB: 4096,

		TrustDomain: "agentcloud.local",

		AuditMaxAge:                Duration(90 * 24 * time.Hour),
		AuditMaxBytes:              1 << 30,
		AuditAuthFailuresPerMinute: 10,
		AgentInitTimeout:           Duration(10 * time.Second),
		SessionMaxBodyBytes:        32 << 20,
		WebSockets:                 defaultWebSockets(),
		Logs:                       defaultLogs(),
		Cache:                      defaultCache(),
		Images:                     defaultImages(),
		Volumes:                    defaultVolumes(),
		Tracing:                    defaultTracing(),

		RolloutSteps:                "100%",
		RolloutMinCalls:             20,
		RolloutMaxErrorRateIncrease: 0.05,
		RolloutMaxP99Ratio:          1.5,
		RolloutP99Slack:             Duration(10 * time.Millisecond),
		RolloutInterval:             Duration(time.Second),
		AgentVersionsKept:           10,

		Gateway: DefaultGateway(),
	}
}

// Duration is a time.Duration that reads and writes as "10s".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String implements fmt.Stringer and pflag.Value.
func (d Duration) String() string { return time.Duration(d).String() }

// Set implements pflag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration like 10s or 1m30s: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Type implements pflag.Value.
func (d *Duration) Type() string { return "duration" }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a string duration like "10s"`)
	}
	return d.Set(s)
}

// FieldError is one invalid setting.
type FieldError struct {
	Field  string // JSON/flag name, e.g. "listen"
	Value  string
	Detail string // what is allowed
}

func (e FieldError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Detail)
}

// Errors is every invalid setting found in one pass.
type Errors []FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// LoadFile merges a JSON config file into c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	return c.decode(f, path)
}

func (c *Config) decode(r io.Reader, name string) error {
	data, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return fmt.Errorf("config file %s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", name, describeJSONError(data, err))
	}
	if dec.More() {
		return fmt.Errorf("config file %s: trailing data after the JSON object", name)
	}
	if err := strictjson.Check(data); err != nil { // duplicate keys
		return fmt.Errorf("config file %s: %w", name, err)
	}
	return nil
}

func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset)
		return fmt.Errorf("line %d column %d: %w", line, col, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	return err
}

func lineCol(data []byte, off int64) (int, int) {
	line, col := 1, 1
	for i := int64(0); i < off && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// LoadEnv merges AGENTCLOUD_* variables from lookup (os.LookupEnv).
func (c *Config) LoadEnv(lookup func(string) (string, bool)) error {
	var errs Errors
	str := func(name string, dst *string) {
		if v, ok := lookup("AGENTCLOUD_" + name); ok {
			*dst = v
		}
	}
	dur := func(name string, dst *Duration) {
		if v, ok := lookup("AGENTCLOUD_" + name); ok {
			if err := dst.Set(v); err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, err.Error()})
			}
		}
	}
	str("DATA", &c.Data)
	str("LISTEN", &c.Listen)
	str("NATS_LISTEN", &c.NATSListen)
	str("NATS_NKEY_FILE", &c.NATSNKeyFile)
	str("NATS_URL", &c.NATSURL)
	str("LOG_LEVEL", &c.LogLevel)
	str("LOG_FORMAT", &c.LogFormat)
	str("NODE_ID", &c.NodeID)
	str("TRUST_DOMAIN", &c.TrustDomain)
	str("CA_DIR", &c.CADir)
	str("WASM_CACHE_DIR", &c.WasmCacheDir)
	boolean := func(name string, dst *bool) {
		if v, ok := lookup("AGENTCLOUD_" + name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, "want true or false"})
			}
			*dst = b
		}
	}
	boolean("TLS", &c.TLS)
	boolean("REQUIRE_CLIENT_CERT", &c.RequireClientCert)
	boolean("HTTP3", &c.HTTP3)
	str("TLS_CERT", &c.TLSCert)
	str("TLS_KEY", &c.TLSKey)
	if v, ok := lookup("AGENTCLOUD_TLS_NAMES"); ok {
		c.TLSNames = splitList(v)
	}
	dur("SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	dur("READ_TIMEOUT", &c.ReadTimeout)
	dur("WRITE_TIMEOUT", &c.WriteTimeout)
	dur("AUDIT_MAX_AGE", &c.AuditMaxAge)
	if v, ok := lookup("AGENTCLOUD_AUDIT_MAX_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_AUDIT_MAX_BYTES", v, "want a whole number of bytes (0 = no limit)"})
		}
		c.AuditMaxBytes = n
	}
	if v, ok := lookup("AGENTCLOUD_AUDIT_AUTH_FAILURES_PER_MINUTE"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_AUDIT_AUTH_FAILURES_PER_MINUTE", v, "want a whole number"})
		}
		c.AuditAuthFailuresPerMinute = n
	}
	dur("AGENT_INIT_TIMEOUT", &c.AgentInitTimeout)
	if v, ok := lookup("AGENTCLOUD_SESSION_MEMORY_MIB"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_SESSION_MEMORY_MIB", v, "want a whole number of MiB"})
		}
		c.SessionMemoryMiB = n
	}
	integer := func(name string, dst *int) {
		if v, ok := lookup("AGENTCLOUD_" + name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_" + name, v, "want a whole number"})
			}
			*dst = n
		}
	}
	integer("SESSION_READ_CACHE_MIB", &c.SessionReadCacheMiB)
	integer("SANDBOX_POOL_PROCESS", &c.SandboxPoolProcess)
	integer("SANDBOX_POOL_GVISOR", &c.SandboxPoolGVisor)
	integer("SANDBOX_MAX_PER_OWNER", &c.SandboxMaxPerOwner)
	integer("SANDBOX_MAX_MEMORY_MB", &c.SandboxMaxMemoryMB)
	integer("SANDBOX_MAX_DISK_MB", &c.SandboxMaxDiskMB)
	integer("SANDBOX_MAX_PIDS", &c.SandboxMaxPids)
	dur("SANDBOX_MAX_TIMEOUT", &c.SandboxMaxTimeout)
	integer("SANDBOX_MAX_SNAPSHOTS", &c.SandboxMaxSnapshots)
	integer("SANDBOX_MAX_SNAPSHOT_MB", &c.SandboxMaxSnapshotMB)
	if v, ok := lookup("AGENTCLOUD_SANDBOX_MAX_CPUS"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_SANDBOX_MAX_CPUS", v, "want a number of cores, e.g. 2 or 0.5"})
		}
		c.SandboxMaxCPUs = f
	}
	if v, ok := lookup("AGENTCLOUD_MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_MAX_BODY_BYTES", v, "want a whole number of bytes"})
		}
		c.MaxBodyBytes = n
	}
	if v, ok := lookup("AGENTCLOUD_SESSION_MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_SESSION_MAX_BODY_BYTES", v, "want a whole number of bytes"})
		}
		c.SessionMaxBodyBytes = n
	}
	errs = append(errs, c.loadRolloutEnv(lookup)...)
	errs = append(errs, c.loadWebSocketEnv(lookup)...)
	errs = append(errs, c.loadCacheEnv(lookup)...)
	errs = append(errs, c.loadLogsEnv(lookup)...)
	errs = append(errs, c.loadImagesEnv(lookup)...)
	errs = append(errs, c.loadVolumesEnv(lookup)...)
	errs = append(errs, c.loadTracingEnv(lookup)...)
	c.loadGatewayEnv(lookup, &errs)
	c.loadEgressEnv(lookup)
	errs = append(errs, c.loadClusterEnv(lookup)...)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Validate checks every field and reports all problems at once.
func (c Config) Validate() error {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	if strings.TrimSpace(c.Data) == "" {
		add("data", c.Data, "must name a directory")
	}
	if err := checkAddr(c.Listen); err != nil {
		add("listen", c.Listen, err.Error())
	}
	if c.NATSListen != "" {
		if err := checkAddr(c.NATSListen); err != nil {
			add("nats_listen", c.NATSListen, err.Error())
		}
	}
	if c.NATSURL != "" {
		if c.NATSListen != "" {
			add("nats_listen", c.NATSListen, "cannot be combined with nats_url (no embedded server runs then)")
		}
		for _, u := range strings.Split(c.NATSURL, ",") {
			pu, err := url.Parse(strings.TrimSpace(u))
			if err != nil || (pu.Scheme != "nats" && pu.Scheme != "tls") || pu.Host == "" {
				add("nats_url", c.NATSURL, "want nats://host:port (comma-separated for a cluster)")
				break
			}
		}
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		add("log_level", c.LogLevel, "want one of debug, info, warn, error")
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		add("log_format", c.LogFormat, "want one of auto, text, json")
	}
	if c.ShutdownTimeout.D() <= 0 || c.ShutdownTimeout.D() > 10*time.Minute {
		add("shutdown_timeout", c.ShutdownTimeout.String(), "want a duration between 1ms and 10m")
	}
	if c.ReadTimeout.D() <= 0 {
		add("read_timeout", c.ReadTimeout.String(), "want a positive duration")
	}
	if c.WriteTimeout.D() <= 0 {
		add("write_timeout", c.WriteTimeout.String(), "want a positive duration")
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 1<<30 {
		add("max_body_bytes", strconv.FormatInt(c.MaxBodyBytes, 10), "want between 1024 and 1073741824")
	}
	if c.SessionMemoryMiB < 16 || c.SessionMemoryMiB > 1<<20 {
		add("session_memory_mib", strconv.Itoa(c.SessionMemoryMiB), "want between 16 and 1048576")
	}
	if c.SessionReadCacheMiB < 0 || c.SessionReadCacheMiB > 1<<16 {
		add("session_read_cache_mib", strconv.Itoa(c.SessionReadCacheMiB), "want between 0 (off) and 65536")
	}
	if c.SessionMaxBodyBytes < 1024 || c.SessionMaxBodyBytes > 1<<30 {
		add("session_max_body_bytes", strconv.FormatInt(c.SessionMaxBodyBytes, 10), "want between 1024 and 1073741824")
	}
	if c.AgentInitTimeout.D() < time.Millisecond || c.AgentInitTimeout.D() > 10*time.Minute {
		add("agent_init_timeout", c.AgentInitTimeout.String(), "want a duration between 1ms and 10m")
	}
	if c.ToolCallsPerSecond < 0 || c.ToolCallsPerSecond != c.ToolCallsPerSecond {
		add("tool_calls_per_second", strconv.FormatFloat(c.ToolCallsPerSecond, 'g', -1, 64), "want 0 (no limit) or more")
	}
	if c.ToolCallBurst < 0 || c.ToolCallsPerSecond > 0 && c.ToolCallBurst < 1 {
		add("tool_call_burst", strconv.Itoa(c.ToolCallBurst), "want at least 1 when tool_calls_per_second is set")
	}
	if c.SandboxPoolProcess < 0 || c.SandboxPoolProcess > MaxSandboxPoolProcess {
		add("sandbox_pool_process", strconv.Itoa(c.SandboxPoolProcess), "want between 0 and "+strconv.Itoa(MaxSandboxPoolProcess))
	}
	if c.SandboxPoolGVisor < 0 || c.SandboxPoolGVisor > 64 {
		add("sandbox_pool_gvisor", strconv.Itoa(c.SandboxPoolGVisor), "want between 0 and 64")
	}
	if c.SandboxMaxPerOwner < 0 || c.SandboxMaxPerOwner > 100000 {
		add("sandbox_max_per_owner", strconv.Itoa(c.SandboxMaxPerOwner), "want between 0 (no cap) and 100000")
	}
	if c.SandboxMaxCPUs < 0 || c.SandboxMaxCPUs > 256 || c.SandboxMaxCPUs != c.SandboxMaxCPUs {
		add("sandbox_max_cpus", strconv.FormatFloat(c.SandboxMaxCPUs, 'g', -1, 64), "want between 0 (no cap) and 256 cores")
	}
	if c.SandboxMaxMemoryMB < 0 || c.SandboxMaxMemoryMB > 0 && c.SandboxMaxMemoryMB < 32 || c.SandboxMaxMemoryMB > 1<<20 {
		add("sandbox_max_memory_mb", strconv.Itoa(c.SandboxMaxMemoryMB), "want 0 (no cap) or between 32 and 1048576 MiB")
	}
	if c.SandboxMaxDiskMB < 0 || c.SandboxMaxDiskMB > 1<<20 {
		add("sandbox_max_disk_mb", strconv.Itoa(c.SandboxMaxDiskMB), "want between 0 (no cap) and 1048576 MiB")
	}
	if c.SandboxMaxPids < 0 || c.SandboxMaxPids > 0 && c.SandboxMaxPids < 8 || c.SandboxMaxPids > 1<<20 {
		add("sandbox_max_pids", strconv.Itoa(c.SandboxMaxPids), "want 0 (no cap) or between 8 and 1048576")
	}
	if c.SandboxMaxTimeout.D() < 0 || c.SandboxMaxTimeout.D() > 0 && c.SandboxMaxTimeout.D() < time.Second || c.SandboxMaxTimeout.D() > 24*time.Hour {
		add("sandbox_max_timeout", c.SandboxMaxTimeout.String(), "want 0 (no cap) or a duration between 1s and 24h")
	}
	if c.SandboxMaxSnapshots < 0 || c.SandboxMaxSnapshots > 100000 {
		add("sandbox_max_snapshots", strconv.Itoa(c.SandboxMaxSnapshots), "want between 0 (no cap) and 100000")
	}
	if c.SandboxMaxSnapshotMB < 0 || c.SandboxMaxSnapshotMB > 1<<30 {
		add("sandbox_max_snapshot_mb", strconv.Itoa(c.SandboxMaxSnapshotMB), "want between 0 (no cap) and 1073741824 MiB")
	}
	if c.NodeID == "" || strings.ContainsAny(c.NodeID, " /\t\n.*>") {
		add("node_id", c.NodeID, "want a non-empty name without spaces, dots, slashes or wildcards")
	}
	if c.RequireClientCert && !c.TLS {
		add("require_client_cert", "true", "needs tls: client certificates are only seen over TLS")
	}
	if a := c.AuditMaxAge.D(); a != 0 && (a < time.Hour || a > 100*365*24*time.Hour) {
		add("audit_max_age", c.AuditMaxAge.String(), "want 0 (keep forever) or a duration from 1h to 876000h")
	}
	if b := c.AuditMaxBytes; b != 0 && (b < 1<<20 || b > 1<<50) {
		add("audit_max_bytes", strconv.FormatInt(b, 10), "want 0 (no limit) or from 1048576 (1 MiB) to 1125899906842624")
	}
	if n := c.AuditAuthFailuresPerMinute; n < 1 || n > 100000 {
		add("audit_auth_failures_per_minute", strconv.Itoa(n), "want from 1 to 100000")
	}
	errs = append(errs, c.validateTLS()...)
	errs = append(errs, c.validateRollout()...)
	errs = append(errs, c.validateWebSockets()...)
	errs = append(errs, c.validateCache()...)
	errs = append(errs, c.validateLogs()...)
	errs = append(errs, c.validateImages()...)
	errs = append(errs, c.validateVolumes()...)
	errs = append(errs, c.validateTracing()...)
	errs = append(errs, c.validateEgress()...)
	errs = append(errs, c.validateCluster()...)
	if !validTrustDomain(c.TrustDomain) {
		add("trust_domain", c.TrustDomain, "want a lowercase DNS-like name of a-z 0-9 . - _, e.g. agentcloud.local")
	}
	c.Gateway.validate(add)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// validTrustDomain applies the SPIFFE trust domain character rules.
func validTrustDomain(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:7070")
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return errors.New("host must be an IP address or localhost")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

// ParseLevel reads a log level name.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	if err != nil || !strings.Contains("debug info warn error", strings.ToLower(s)) || s == "" {
		return 0, fmt.Errorf("unknown log level %q", s)
	}
	return l, nil
}

// CAPath is where the CA keeps its root and keys: ca_dir, else <data>/ca.
func (c Config) CAPath() string {
	if c.CADir != "" {
		return c.CADir
	}
	return filepath.Join(c.Data, "ca")
}

// SessionReadCacheBytes is SessionReadCacheMiB in bytes, negative when it
// is off (session.Config.ReadCache's convention: zero there is its default).
func (c *Config) SessionReadCacheBytes() int64 {
	if c.SessionReadCacheMiB == 0 {
		return -1
	}
	return int64(c.SessionReadCacheMiB) << 20
}
