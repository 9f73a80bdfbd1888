package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

func newServeCmd(g *globals) *cobra.Command {
	cfg := config.Default()
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an agentcloud node (embedded NATS storage by default)",
		Long: `Run an agentcloud node. Settings come from defaults, then --config FILE (JSON),
then AGENTCLOUD_* environment variables, then flags. On first start the
daemon writes an admin token to <data>/admin.token (mode 0600); while it
serves, <data>/api.addr holds its address (and with --tls, <data>/api.url its
https:// URL), which the CLI's --data finds. 'agentcloud status --wait 1m'
waits for a daemon that is starting.

  agentcloud serve --data ./agentcloud-data --listen 127.0.0.1:7070
  agentcloud serve --tls --listen 0.0.0.0:7443 --tls-name agents.example.com
  agentcloud serve --tls --tls-cert tls.crt --tls-key tls.key
  agentcloud serve --cluster prod --node a --cluster-listen 10.0.0.1:6222 --routes 10.0.0.2:6222,10.0.0.3:6222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			final := config.Default()
			if configFile != "" {
				if err := final.LoadFile(configFile); err != nil {
					return err
				}
			}
			if err := final.LoadEnv(os.LookupEnv); err != nil {
				return fmt.Errorf("environment: %w", err)
			}
			// Flags the user set win over file and environment.
			cmd.Flags().Visit(func(f *pflag.Flag) { applyFlag(&final, &cfg, f.Name) })
			if cmd.Flags().Changed("data") {
				final.Data = g.data
			}
			if err := final.Validate(); err != nil {
				return fmt.Errorf("invalid configuration: %w", err)
			}
			log := newLogger(final, g.stderr)
			return serve(cmd.Context(), final, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "JSON config file")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP API address")
	f.StringVar(&cfg.NATSListen, "nats-listen", "", "expose the embedded NATS server on this address")
	f.StringVar(&cfg.NATSURL, "nats-url", "", "use an existing NATS server or cluster instead of the embedded one")
	f.StringVar(&cfg.NATSNKeyFile, "nats-nkey-file", "", "nkey user seed: the one user --nats-listen admits (default <data>/nats/user.nk), or the credentials for --nats-url")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	f.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "auto, text or json")
	f.Var(&cfg.ShutdownTimeout, "shutdown-timeout", "how long in-flight requests may finish on shutdown")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "request body limit")
	f.StringVar(&cfg.NodeID, "node-id", cfg.NodeID, "this node's name")
	f.IntVar(&cfg.SessionMemoryMiB, "session-memory-mib", cfg.SessionMemoryMiB, "memory budget for live session isolates (MiB)")
	f.Int64Var(&cfg.SessionMaxBodyBytes, "session-max-body-bytes", cfg.SessionMaxBodyBytes, "limit on each body into or out of a session (requests, responses, fetch, host calls)")
	f.Var(&cfg.AgentInitTimeout, "agent-init-timeout", "cap on agent initialisation (module top level, wasm _initialize), below each manifest's wall_ms")
	f.BoolVar(&cfg.TLS, "tls", false, "serve the API over TLS with a node certificate from the platform CA (enables mTLS)")
	f.BoolVar(&cfg.RequireClientCert, "require-client-cert", false, "with --tls, refuse clients without a client SVID")
	f.StringArrayVar(&cfg.TLSNames, "tls-name", nil, "with --tls, another DNS name or IP address the node certificate covers (repeatable; config tls_names)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "with --tls, serve this PEM certificate (chain) instead of the node certificate; re-read when it changes")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	f.BoolVar(&cfg.HTTP3, "http3", false, "with --tls, also serve the API over HTTP/3 (QUIC) on UDP at the --listen port")
	f.StringVar(&cfg.TrustDomain, "trust-domain", cfg.TrustDomain, "SPIFFE trust domain")
	f.StringVar(&cfg.CADir, "ca-dir", "", "CA directory (default <data>/ca); put ca.crt and ca.key there to supply your own root")
	f.StringVar(&cfg.WasmCacheDir, "wasm-cache-dir", "", "compiled WebAssembly cache, shareable between nodes on one machine (default: user cache dir)")
	f.Var(&cfg.AuditMaxAge, "audit-max-age", "drop audit records older than this (0 = keep forever)")
	f.Int64Var(&cfg.AuditMaxBytes, "audit-max-bytes", cfg.AuditMaxBytes, "drop the oldest audit records past this size (0 = no limit)")
	f.IntVar(&cfg.AuditAuthFailuresPerMinute, "audit-auth-failures-per-minute", cfg.AuditAuthFailuresPerMinute,
		"failed authentications audited one by one per remote address and minute; the rest are summarised")
	// Sandbox caps for non-administrators (0 = no cap).
	f.IntVar(&cfg.SandboxMaxPerOwner, "sandbox-max-per-owner", cfg.SandboxMaxPerOwner, "live sandboxes one owner may have")
	f.Float64Var(&cfg.SandboxMaxCPUs, "sandbox-max-cpus", cfg.SandboxMaxCPUs, "CPU cores a user may give one sandbox")
	f.IntVar(&cfg.SandboxMaxMemoryMB, "sandbox-max-memory-mb", cfg.SandboxMaxMemoryMB, "memory (MiB) a user may give one sandbox")
	f.IntVar(&cfg.SandboxMaxDiskMB, "sandbox-max-disk-mb", cfg.SandboxMaxDiskMB, "size (MiB) of /workspace and of /tmp a user may give one sandbox")
	f.IntVar(&cfg.SandboxMaxPids, "sandbox-max-pids", cfg.SandboxMaxPids, "processes and threads a user may give one sandbox")
	f.Var(&cfg.SandboxMaxTimeout, "sandbox-max-timeout", "lifetime a user may give one sandbox, at creation and per extension")
	f.StringArrayVar(&cfg.EgressLoopbackHosts, "egress-loopback-host", nil,
		"NAME[=ADDR]: the egress proxy resolves NAME to this loopback address (default 127.0.0.1) and lets agents reach it, for stand-in upstreams in benchmarks and test benches (repeatable; needs a loopback --listen)")
	f.StringVar(&cfg.EgressUpstreamCAFile, "egress-upstream-ca-file", "", "PEM CA certificates the egress proxy trusts for upstream HTTPS besides the system roots")
	f.StringVar(&cfg.EgressSignatureAgent, "egress-signature-agent", "", "https origin that serves this node's Web Bot Auth key directory; set, agents' outbound requests are signed (a key per tenant)")
	addClusterFlags(f, &cfg)
	return cmd
}

func applyFlag(dst, src *config.Config, name string) {
	switch name {
	case "listen":
		dst.Listen = src.Listen
	case "nats-listen":
		dst.NATSListen = src.NATSListen
	case "nats-url":
		dst.NATSURL = src.NATSURL
	case "nats-nkey-file":
		dst.NATSNKeyFile = src.NATSNKeyFile
	case "log-level":
		dst.LogLevel = src.LogLevel
	case "log-format":
		dst.LogFormat = src.LogFormat
	case "shutdown-timeout":
		dst.ShutdownTimeout = src.ShutdownTimeout
	case "max-body-bytes":
		dst.MaxBodyBytes = src.MaxBodyBytes
	case "node-id":
		dst.NodeID = src.NodeID
	case "session-memory-mib":
		dst.SessionMemoryMiB = src.SessionMemoryMiB
	case "session-max-body-bytes":
		dst.SessionMaxBodyBytes = src.SessionMaxBodyBytes
	case "agent-init-timeout":
		dst.AgentInitTimeout = src.AgentInitTimeout
	case "tls":
		dst.TLS = src.TLS
	case "require-client-cert":
		dst.RequireClientCert = src.RequireClientCert
	case "tls-name":
		dst.TLSNames = src.TLSNames
	case "tls-cert":
		dst.TLSCert = src.TLSCert
	case "tls-key":
		dst.TLSKey = src.TLSKey
	case "http3":
		dst.HTTP3 = src.HTTP3
	case "trust-domain":
		dst.TrustDomain = src.TrustDomain
	case "ca-dir":
		dst.CADir = src.CADir
	case "wasm-cache-dir":
		dst.WasmCacheDir = src.WasmCacheDir
	case "audit-max-age":
		dst.AuditMaxAge = src.AuditMaxAge
	case "audit-max-bytes":
		dst.AuditMaxBytes = src.AuditMaxBytes
	case "audit-auth-failures-per-minute":
		dst.AuditAuthFailuresPerMinute = src.AuditAuthFailuresPerMinute
	case "sandbox-max-per-owner":
		dst.SandboxMaxPerOwner = src.SandboxMaxPerOwner
	case "sandbox-max-cpus":
		dst.SandboxMaxCPUs = src.SandboxMaxCPUs
	case "sandbox-max-memory-mb":
		dst.SandboxMaxMemoryMB = src.SandboxMaxMemoryMB
	case "sandbox-max-disk-mb":
		dst.SandboxMaxDiskMB = src.SandboxMaxDiskMB
	case "sandbox-max-pids":
		dst.SandboxMaxPids = src.SandboxMaxPids
	case "sandbox-max-timeout":
		dst.SandboxMaxTimeout = src.SandboxMaxTimeout
	case "egress-loopback-host":
		dst.EgressLoopbackHosts = src.EgressLoopbackHosts
	case "egress-upstream-ca-file":
		dst.EgressUpstreamCAFile = src.EgressUpstreamCAFile
	case "egress-signature-agent":
		dst.EgressSignatureAgent = src.EgressSignatureAgent
	default:
		applyClusterFlag(dst, src, name)
	}
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	level, _ := config.ParseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve runs the daemon until SIGINT or SIGTERM, then shuts down gracefully.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down", "reason", context.Cause(ctx))
	// A second signal must not end the process halfway through its
	// shutdown (a terminal's Ctrl-C reaches the whole process group, and
	// a wrapper such as scripts/run.sh sends SIGTERM too): the gVisor
	// sandboxes it has not yet destroyed would outlive it. It is logged;
	// a third exits at once.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM) // before stop: no gap
	stop()
	done := make(chan struct{})
	defer func() {
		signal.Stop(sigs)
		close(done)
	}()
	go func() {
		for n := 1; ; n++ {
			select {
			case sig := <-sigs:
				if n == 1 {
					log.Warn("already shutting down; another signal exits at once", "signal", sig.String())
					continue
				}
				log.Error("exiting before the shutdown finished", "signal", sig.String())
				os.Exit(1)
			case <-done:
				return
			}
		}
	}()
	return d.Shutdown(context.Background())
}
