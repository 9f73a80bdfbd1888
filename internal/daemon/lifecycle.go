package daemon

// One lifecycle (lifecycle.go): every part the daemon runs is a part with
// a start and a close. Start runs parts() forward; closeParts closes the
// ones whose start ran backward, so a part is closed only after everything
// that uses it. The order is the wiring: each part may use the ones before
// it (the session manager is built before the security part, which reads
// agents from it, and started after the egress proxy it fetches through).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/gateway/h3serve"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/session/sessionhttp"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/systemhttp"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// part is one thing the daemon runs. start and close may be nil; close
// must cope with a start that failed half-way (fields left nil).
type part struct {
	name  string
	start func(ctx context.Context) error
	close func(ctx context.Context) error
}

// parts are the daemon's parts in start order.
func (d *Daemon) parts() []part {
	return []part{
		{name: "tracing", start: d.tel.Start, close: d.tel.Shutdown}, // OTLP traces when configured
		{name: "data dir", start: d.startDataDir, close: d.closeDataDir},
		{name: "cluster join", start: d.installJoin}, // join.go
		{name: "store", start: d.openStore, close: d.closeStore},
		{name: "isolate runtime", start: d.startRuntime, close: d.closeRuntime},
		{name: "session manager", start: d.newSessions}, // closed by "sessions" below
		{name: "cluster", start: d.startCluster, close: d.closeCluster},
		{name: "security", start: d.startSecurity, close: d.closeSecurity},
		{name: "egress proxy", start: d.startProxy, close: d.closeProxy},
		{name: "api", start: d.startAPI},
		{name: "sandboxes", start: d.startSandboxes, close: d.closeSandboxes},
		{name: "e2b api", start: d.startE2B, close: d.closeE2B},            // e2b.go
		{name: "pipeline", start: d.startPipeline, close: d.closePipeline}, // ledger, rollouts, runner (pipeline.go)
		{name: "toolbox", start: d.startTools},
		{name: "tool registry", start: d.startToolRegistry, close: d.closeToolRegistry},
		{name: "models", start: d.startModels},
		// Sessions start once every env service they may call is bound
		// (an alarm can run agent code at once), and so close before any
		// of those services.
		{name: "sessions", start: d.startSessions, close: d.closeSessions},
		{name: "pipeline runs", start: d.startPipelineRuns, close: d.closePipelineRuns},
		{name: "gateway", start: d.startGateway}, // the front door (gateway.go)
		{name: "console", start: d.startConsole}, // the web console at /ui/ (console.go)
		{name: "listener", start: d.startListener},
		{name: "cluster peers", start: d.startPeers, close: d.closePeers}, // cluster.go
	}
}

// startDataDir creates and locks the data dir and removes stale client
// files.
func (d *Daemon) startDataDir(context.Context) error {
	if err := os.MkdirAll(d.cfg.Data, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", d.cfg.Data, err)
	}
	var err error
	if d.lock, err = atomicfile.Lock(filepath.Join(d.cfg.Data, "LOCK")); err != nil {
		return fmt.Errorf("data dir %s is in use: %w", d.cfg.Data, err)
	}
	return d.removeClientFiles()
}

func (d *Daemon) closeDataDir(context.Context) error {
	atomicfile.Unlock(d.lock)
	d.lock = nil
	return nil
}

// openStore loads the bootstrap credential and opens the store.
func (d *Daemon) openStore(ctx context.Context) error {
	var err error
	if d.bootstrap, err = auth.LoadOrCreate(d.cfg.Data); err != nil {
		return err
	}
	sopts, err := d.storeOptions()
	if err != nil {
		return err
	}
	if d.store, err = store.Open(ctx, sopts); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	return nil
}

func (d *Daemon) closeStore(context.Context) error {
	if d.store == nil {
		return nil
	}
	err := d.store.Close()
	d.store = nil
	return err
}

func (d *Daemon) startRuntime(ctx context.Context) error {
	var err error
	d.runtime, err = isolate.NewRuntime(ctx, isolate.Config{
		CacheDir: isolate.CacheDir(d.cfg.WasmCacheDir, d.cfg.Data), Logger: d.log.With("component", "isolate"),
		MaxBodyBytes: int(d.cfg.SessionMaxBodyBytes), Metrics: d.reg, Prefill: isolate.DefaultPrefill,
	})
	if err != nil {
		return fmt.Errorf("isolate runtime: %w", err)
	}
	return nil
}

func (d *Daemon) closeRuntime(ctx context.Context) error {
	if d.runtime != nil {
		_ = d.runtime.Close(ctx)
		d.runtime = nil
	}
	return nil
}

// newSessions builds the session manager (it starts nothing yet). It
// comes before security, the toolbox and sandboxes, which read agents and
// call sessions through it; startSessions hands it what they built.
func (d *Daemon) newSessions(ctx context.Context) error {
	d.env = map[string]session.Service{}
	var err error
	d.sessions, err = session.New(ctx, session.Config{
		Store: d.store, Runtime: d.runtime, Metrics: d.reg,
		MemoryBudget: int64(d.cfg.SessionMemoryMiB) << 20, InitTimeout: d.cfg.AgentInitTimeout.D(), ReadCache: d.cfg.SessionReadCacheBytes(),
		Logger: d.log.With("component", "session"), Sockets: session.SocketLimits{MaxMessageBytes: min(d.cfg.WebSockets.MaxMessageBytes, d.cfg.SessionMaxBodyBytes),
			PerSession: d.cfg.WebSockets.PerSession, PerTenant: d.cfg.WebSockets.PerTenant, Idle: d.cfg.WebSockets.IdleTimeout.D()}, Logs: session.LogLimits(d.cfg.Logs),
		CacheBytes: d.cfg.Cache.Bytes, CacheEntryBytes: d.cfg.Cache.EntryBytes})
	return err
}

func (d *Daemon) startSecurity(ctx context.Context) error {
	var err error
	d.sec, err = security.New(ctx, security.Config{TrustDomain: d.cfg.TrustDomain, CADir: d.cfg.CAPath(), DataDir: d.cfg.Data,
		AuditRetention: audit.Retention{MaxAge: d.cfg.AuditMaxAge.D(), MaxBytes: d.cfg.AuditMaxBytes}, SignatureAgent: d.cfg.EgressSignatureAgent,
		AuthFailuresPerMinute: d.cfg.AuditAuthFailuresPerMinute, Logger: d.log.With("component", "security"), Metrics: d.reg},
		security.Deps{Store: d.store, Bootstrap: d.bootstrap, Agents: agentDirectory{d}, Sandboxes: &d.sandboxDir,
			PrincipalFrom: securityhttp.PrincipalFrom})
	if err != nil {
		return err
	}
	return d.sec.Start(ctx)
}

func (d *Daemon) closeSecurity(ctx context.Context) error {
	if d.sec == nil {
		return nil
	}
	err := d.sec.Close(ctx)
	d.sec = nil
	return err
}

func (d *Daemon) startProxy(context.Context) error {
	var err error
	if d.proxy, err = d.newEgressProxy(); err != nil {
		return fmt.Errorf("egress proxy: %w", err)
	}
	return nil
}

func (d *Daemon) closeProxy(context.Context) error {
	if d.proxy != nil {
		_ = d.proxy.Close()
		d.proxy = nil
	}
	return nil
}

// startSessions starts the session manager with its bindings: security,
// the egress proxy and the env services the parts before it built
// (session.Bindings: the one hand-over of the parts built after it).
func (d *Daemon) startSessions(ctx context.Context) error {
	err := d.sessions.Start(ctx, session.Bindings{
		Fetcher:          d.sec.SessionFetcher(d.proxy), // fetch(): session → security → egress proxy
		Services:         d.env,                         // env.tools, env.sandbox, env.ai
		DeployAuthorizer: sessionhttp.AuthorizeDeploys(securityhttp.Auth{Sec: d.sec}),
		Identity:         d.sec, // session SVIDs at activation
		Flow:             d.sec, // labels follow calls between sessions
		Observer:         d.pipe.rollout.Meter(),
		Owner:            d.sessionOwner(),
	})
	if err != nil {
		return fmt.Errorf("start sessions: %w", err)
	}
	return nil
}

func (d *Daemon) closeSessions(ctx context.Context) error {
	if d.sessions == nil {
		return nil
	}
	err := d.sessions.Close(ctx)
	d.sessions = nil
	return err
}

// startAPI builds the router with the system, security and session routes;
// the parts after it add theirs.
func (d *Daemon) startAPI(context.Context) error {
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.router = httpapi.NewRouter(httpapi.Options{
		Logger:       d.log.With("component", "http"),
		Auth:         securityhttp.VerifiedAuth{Auth: securityhttp.Auth{Sec: d.sec}}, // trusts the front door's verification (gateway.go)
		Authz:        securityhttp.Auth{Sec: d.sec},
		Metrics:      httpapi.NewMetrics(d.reg),
		MaxBodyBytes: d.cfg.MaxBodyBytes,
	})
	systemhttp.Routes(d.router, systemhttp.Config{Ready: d.ready.Load, Store: d.store, Metrics: d.reg, NodeID: d.cfg.NodeID,
		Started: d.started, Logger: d.log.With("component", "http")})
	d.clusterRoutes()
	securityhttp.Routes(d.router, d.sec, d.configChanger()) // policy and host-list changes are runs
	sessionhttp.New(sessionhttp.Config{Manager: d.sessions, Authorizer: securityhttp.Auth{Sec: d.sec}, Deploy: d.handleDeploy, Log: d.log, Card: sessionhttp.CardFrom(d.cfg), Node: d.cfg.NodeID}).Routes(d.router)
	return nil
}

// startListener listens, protects the daemon's own listeners from the
// egress proxy, serves, and tells local clients where (writeClientFiles).
// Shutdown stops the server before closeParts runs.
func (d *Daemon) startListener(context.Context) error {
	var err error
	d.ln, err = net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", d.cfg.Listen, err)
	}
	d.protectListeners()
	tlsCfg, err := d.serverTLS()
	if err != nil {
		_ = d.ln.Close()
		return err
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(tlsCfg != nil)
	d.srv = &http.Server{
		Handler:           d.publicHandler(),
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       d.cfg.ReadTimeout.D(),
		WriteTimeout:      d.cfg.WriteTimeout.D(),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
		TLSConfig:         tlsCfg,
	}
	d.ln = d.guard(d.srv, d.ln) // the front door and its limits (gateway.go)
	if d.h3, err = h3serve.Start(d.srv, h3serve.Config{On: d.cfg.HTTP3, Addr: d.ln.Addr().String(), TLS: tlsCfg, Limits: d.door.limits, Log: d.log}); err != nil {
		_ = d.ln.Close()
		return err
	}
	go func() {
		serve := d.srv.Serve
		if tlsCfg != nil {
			serve = func(ln net.Listener) error { return d.srv.ServeTLS(ln, "", "") }
		}
		if err := serve(d.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", "err", err)
		}
	}()
	d.ready.Store(true)
	return d.writeClientFiles(tlsCfg != nil)
}
