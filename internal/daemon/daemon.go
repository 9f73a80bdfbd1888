// Package daemon is agentcloud's composition root: the one package that
// constructs every part (store, isolate runtime, sessions, security, egress
// proxy, sandboxes, pipeline, toolbox, tool registry, model gateway, front
// door, cluster, HTTP API) and wires them together. It owns the process
// lifecycle: one ordered list of parts (lifecycle.go) started forward and
// closed backward, readiness, and graceful shutdown. Besides wiring it
// keeps only adapters that pass one part to another (the sandbox directory
// security reads, the agent directory that adds a first release's author);
// handlers, formats and decisions live in the packages it wires
// (systemhttp has the system routes). internal/hygiene keeps every other
// package from importing this one and caps its size.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/console"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/gateway/h3serve"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/sandbox/e2bhttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/telemetry"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// AddrFile is written in the data dir with the API's actual listen address,
// so clients and tests can find a daemon started on port 0. It is written
// (renamed into place) only once the daemon serves and is ready, after the
// admin token and, with --tls, URLFile and the admin certificate, so a client
// that sees it finds everything else; it is removed when the daemon starts
// (a leftover describes a daemon that is gone) and when it shuts down.
const AddrFile = "api.addr"

// TokenFile is the admin token's file in the data dir, for clients on the
// daemon's machine (the CLI's --data).
const TokenFile = auth.TokenFile

// Daemon is one running agentcloud node.
type Daemon struct {
	cfg     config.Config
	log     *slog.Logger
	started time.Time
	tel     *telemetry.Tracing // nil: tracing off

	lock     *os.File
	store    *store.Store
	runtime  *isolate.Runtime
	proxy    *egress.Proxy
	sec      *security.Security // identity, authorization, secrets, audit, approvals
	sessions *session.Manager
	// env are the env.<name> services the parts before "sessions" build;
	// startSessions hands them to the session manager.
	env map[string]session.Service
	// sandboxes is set by startSandboxes (sandbox.go).
	sandboxes *sandboxParts
	// sandboxDir is security's SandboxDirectory over sandboxes.
	sandboxDir sandboxDirectory
	e2b        *e2bhttp.Handler // set by startE2B (e2b.go)
	tools      toolParts        // set by startTools (tools.go)
	models     *modelgw.Gateway // set by startModels (models.go)
	reg        *prometheus.Registry
	router     *httpapi.Router
	srv        *http.Server
	h3         *h3serve.Server // HTTP/3 beside srv (config http3)
	ln         net.Listener
	ready      atomic.Bool
	shut       atomic.Bool // Shutdown ran: a second call does nothing
	stopped    chan struct{}

	egressHooks egressHooks // tests only (egress_export_test.go)

	// running are the parts Start has started, in order (lifecycle.go).
	running []part
	// bootstrap is the admin's bootstrap credential, loaded at start.
	bootstrap *auth.Bootstrap

	// toolRegistry is set by startToolRegistry (tools_registry.go).
	toolRegistry *registry.Registry

	door *frontDoor // set by startGateway (gateway.go)

	console *console.Console // set by startConsole (console.go)

	// pipe is set by startPipeline (pipeline.go); pipelineClock, if set,
	// is the clock of its runs and rollouts (tests only).
	pipe          *pipelineParts
	pipeRunner    atomic.Pointer[pipeline.Runner] // pipe.runner, for security's agent owners (pipeline_owner.go)
	pipelineClock atomic.Pointer[func() time.Time]

	// cluster is set by startCluster (cluster.go) in a cluster.
	cluster *clusterParts
}

// New validates cfg and prepares a daemon; Start brings it up.
func New(cfg config.Config, log *slog.Logger) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Daemon{cfg: cfg, log: telemetry.Logger(cfg.Tracing, log), tel: telemetry.Configure(cfg.Tracing, log), stopped: make(chan struct{}), reg: prometheus.NewRegistry()}, nil
}

// Start brings the parts up in order (parts, lifecycle.go) and returns once
// the daemon is ready to serve. If one fails, those already started are
// closed in reverse order.
func (d *Daemon) Start(ctx context.Context) (err error) {
	d.started = time.Now()
	defer func() {
		if err != nil {
			d.closeParts()
		}
	}()
	for _, p := range d.parts() {
		// A part whose start ran is closed even if it failed half-way:
		// each close copes with what its start left.
		d.running = append(d.running, p)
		if p.start == nil {
			continue
		}
		if err := p.start(ctx); err != nil {
			return err
		}
	}
	d.log.Info("agentcloud ready", "listen", d.ln.Addr().String(), "data", d.cfg.Data,
		"store", d.store.Mode(), "sync", d.store.SyncMode(), "startup", time.Since(d.started).Round(time.Microsecond))
	return nil
}

// Addr is the API's listen address (valid after Start).
func (d *Daemon) Addr() string { return d.ln.Addr().String() }

// DataDir is the daemon's data directory.
func (d *Daemon) DataDir() string { return d.cfg.Data }

// Handler is the daemon's HTTP handler (for in-process tests).
func (d *Daemon) Handler() http.Handler { return d.router }

// Shutdown stops accepting, lets in-flight requests finish within the
// configured timeout, then flushes and closes the store. Only the first
// call does this; later ones return nil.
func (d *Daemon) Shutdown(ctx context.Context) error {
	if !d.shut.CompareAndSwap(false, true) {
		return nil
	}
	d.ready.Store(false)
	if d.lock != nil {
		if err := d.removeClientFiles(); err != nil {
			d.log.Warn("remove client files", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ShutdownTimeout.D())
	defer cancel()
	var errs []error
	if d.srv != nil {
		if err := d.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			_ = d.srv.Close()
		}
	}
	errs = append(errs, d.h3.Shutdown(ctx)) // nil without http3
	d.closeParts()
	close(d.stopped)
	d.log.Info("agentcloud stopped")
	return errors.Join(errs...)
}

// closeParts closes the parts that were started, in reverse order. It is
// safe to call more than once.
func (d *Daemon) closeParts() {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout.D())
	defer cancel()
	for i := len(d.running) - 1; i >= 0; i-- {
		p := d.running[i]
		if p.close == nil {
			continue
		}
		if err := p.close(ctx); err != nil {
			d.log.Warn("close "+p.name, "err", err)
		}
	}
	d.running = nil
}

// writeClientFiles tells local clients where the daemon serves (localAddr):
// URLFile with TLS, then AddrFile, the one a waiting client looks for.
func (d *Daemon) writeClientFiles(tls bool) error {
	if tls {
		if err := atomicfile.Write(filepath.Join(d.cfg.Data, URLFile), []byte("https://"+d.localAddr()+"\n"), 0o600); err != nil {
			return err
		}
	}
	return atomicfile.Write(filepath.Join(d.cfg.Data, AddrFile), []byte(d.localAddr()+"\n"), 0o600)
}

// removeClientFiles removes AddrFile and URLFile (AddrFile first, so a
// client never pairs a new api.addr with an old api.url).
func (d *Daemon) removeClientFiles() error {
	for _, name := range []string{AddrFile, URLFile} {
		if err := os.Remove(filepath.Join(d.cfg.Data, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
	}
	return nil
}
