package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/image"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxenv"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxnet"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxstate"
	"github.com/agentcloud/agentcloud/internal/sandbox/snapshot"
	"github.com/agentcloud/agentcloud/internal/sandbox/volume"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// sandboxParts are the sandbox tiers and Manager of one daemon.
type sandboxParts struct {
	dir     string // tier state, removed at close
	tiers   []sandbox.Tier
	manager *sandbox.Manager
	nets    *sandboxnet.Nets // egress proxy listeners inside sandboxes
	env     sandboxenv.Config
}

// startSandboxes builds the sandbox tiers that this host supports, the
// Manager with its warm pools, and registers the /v1/sandboxes routes. A
// host that cannot run sandboxes (not root, no user namespaces) keeps the
// routes, answering 503 with the reason; the rest of the daemon runs on.
// Without runsc, only the gVisor tier is left out.
// Must be called after d.router is built.
func (d *Daemon) startSandboxes(ctx context.Context) error {
	log := d.log.With("component", "sandbox")
	off := func(reason error) {
		log.Warn("sandboxes disabled", "reason", reason)
		sandboxhttp.New(sandboxhttp.Config{Unavailable: reason, Logger: log}).Routes(d.router)
		d.env["sandbox"] = sandboxenv.New(sandboxenv.Config{Unavailable: reason})
	}
	if err := process.Available(); err != nil {
		off(err)
		return nil
	}
	dir, err := process.NewStateDir("", gvisor.RemoveLeftovers)
	if err != nil {
		return err
	}
	images, err := image.Open(filepath.Join(d.cfg.Data, "templates"), image.Limits{MaxBytes: d.cfg.Images.MaxBytes, MaxLayers: d.cfg.Images.MaxLayers})
	if err != nil {
		return err
	}
	vols, err := volume.Open(filepath.Join(d.cfg.Data, "volumes"), volume.Limits(d.cfg.Volumes))
	if err != nil {
		return err
	}
	d.sec.RegisterResourceOwner(sandboxhttp.TypeVolume, sandboxhttp.VolumeOwner(vols))
	pt, err := process.New(process.Config{DataDir: dir, Logger: log.With("tier", sandbox.TierProcess), Images: images})
	if err != nil { // e.g. no usable cgroup hierarchy in this container
		_ = os.RemoveAll(dir)
		off(fmt.Errorf("process sandbox tier: %w", err))
		return nil
	}
	parts := &sandboxParts{dir: dir, tiers: []sandbox.Tier{pt}, nets: d.newSandboxNets(log)}
	d.sandboxes = parts
	var pools []sandbox.PoolConfig
	if pc := sandbox.ProcessPool(d.cfg.SandboxPoolProcess, log); pc.Size > 0 {
		pools = append(pools, pc)
	}
	if gt := gvisor.Optional(gvisor.Config{DataDir: cmp.Or(gvisor.StateDir(d.cfg.Data), dir), RemoveOnClose: true, Logger: log.With("tier", sandbox.TierGVisor), Images: images, HostWorkspaceDir: d.cfg.Data + "/sandbox-pool"}); gt != nil {
		parts.tiers = append(parts.tiers, gt)
		if d.cfg.SandboxPoolGVisor > 0 {
			pools = append(pools, sandbox.PoolConfig{Tier: sandbox.TierGVisor, Size: d.cfg.SandboxPoolGVisor})
		}
	}
	parts.manager, err = sandbox.NewManager(sandbox.ManagerConfig{Tiers: parts.tiers, Pools: pools, Logger: log,
		DefaultTimeout: sandbox.DefaultTimeout, Admission: d.sandboxCaps(),
		NetworkHook: parts.nets.Hook, OnClose: parts.nets.Close, Metrics: d.reg, Node: d.cfg.ClusterNode(),
		Records: sandboxstate.New(d.store, d.cfg.ClusterNode()), Dir: d.cfg.Data + "/sandboxes"})
	if err != nil {
		return fmt.Errorf("sandbox manager: %w", err)
	}
	if err := parts.manager.Start(ctx); err != nil {
		return fmt.Errorf("start sandbox manager: %w", err)
	}
	d.sandboxDir.parts.Store(parts)
	portKey, err := security.NodeKey(d.cfg.Data) // signs public port URLs
	if err != nil {
		return err
	}
	snaps, err := snapshot.Open(ctx, snapshot.Config{Manager: parts.manager, Store: d.store, Node: d.cfg.ClusterNode(), Dir: d.cfg.Data + "/snapshots",
		MaxPerOwner: d.cfg.SandboxMaxSnapshots, MaxBytesPerOwner: int64(d.cfg.SandboxMaxSnapshotMB) << 20, Exempt: d.sandboxCaps().Exempt, Logger: log})
	if err != nil {
		return err
	}
	d.sec.RegisterResourceOwner(sandboxhttp.TypeSnapshot, snaps.OwnerOf)
	auth := securityhttp.Auth{Sec: d.sec}
	sandboxhttp.New(sandboxhttp.Config{Manager: parts.manager, Tiers: parts.tiers, Logger: log, PortKey: portKey, BeforeCreate: securityhttp.SandboxCreate,
		Snapshots: snaps, SnapshotVisible: auth.SnapshotVisible, Images: images, Volumes: vols, Authorizer: auth, Visible: auth.SandboxVisible,
		Identity: auth.SandboxIdentity}).Routes(d.router)
	parts.env = sandboxenv.Config{Manager: parts.manager, Security: d.sec, Agents: d.sessions, Volumes: vols, Logger: log}
	d.env["sandbox"] = sandboxenv.New(parts.env)
	log.Info("sandboxes ready", "tiers", sandbox.TierNames(parts.tiers), "dir", dir)
	return nil
}

// newSandboxNets serves the egress proxy inside each sandbox as the
// sandbox (internal/sandbox/sandboxnet), with its platform calls to the API.
// The proxy and security part are captured now: closeParts clears the
// daemon's fields while a handler may still be finishing.
func (d *Daemon) newSandboxNets(log *slog.Logger) *sandboxnet.Nets {
	proxy, sec := d.proxy, d.sec
	return sandboxnet.New(sandboxnet.Config{
		SandboxID: sec.SandboxID,
		// The sandbox's grants travel in its egress.Caller, read by the
		// decider, the secret hook and the auditor. A session's sandbox
		// reading an untrusted host lowers the session's integrity:
		// security's AuditEgress does it as each answer arrives.
		Egress: func(id spiffeid.ID, rec sandbox.Ownership) http.Handler {
			return proxy.Handler(security.SandboxRecord(rec).EgressCaller(id.String()))
		},
		Platform: d.router,
		IssueToken: func(id spiffeid.ID, ttl time.Duration) (string, error) {
			tok, _, err := sec.CA().IssueJWT(id, []string{security.APIAudience}, ttl)
			return tok, err
		},
		// The proxy intercepts HTTPS with leaves from the platform CA.
		CABundle: sandboxnet.CABundle(sec.CA().Certificate()),
		Logger:   log,
	})
}

// closeSandboxes deletes every sandbox, then closes the tiers and removes
// their state. It is safe to call when startSandboxes did not run or failed.
func (d *Daemon) closeSandboxes(context.Context) error {
	parts := d.sandboxes
	if parts == nil {
		return nil
	}
	d.sandboxes = nil
	var errs []error
	if parts.manager != nil {
		errs = append(errs, parts.manager.Close())
	}
	for _, t := range parts.tiers {
		errs = append(errs, t.Close())
	}
	errs = append(errs, os.RemoveAll(parts.dir))
	return errors.Join(errs...)
}

// sandboxCaps are the per-owner caps of sandbox_max_*; administrators
// have none.
func (d *Daemon) sandboxCaps() sandbox.Caps {
	return sandbox.Caps{PerOwner: d.cfg.SandboxMaxPerOwner, CPUs: d.cfg.SandboxMaxCPUs, MemoryMB: d.cfg.SandboxMaxMemoryMB,
		DiskMB: d.cfg.SandboxMaxDiskMB, Pids: d.cfg.SandboxMaxPids, Timeout: d.cfg.SandboxMaxTimeout.D(), Exempt: d.sec.IsAdmin}
}
