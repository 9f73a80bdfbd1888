package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

// sandboxParts are the sandbox tiers and Manager of one daemon.
type sandboxParts struct {
	dir     string // tier state, removed at close
	tiers   []sandbox.Tier
	manager *sandbox.Manager
	nets    sandboxNets // egress proxy listeners inside sandboxes
	// caBundle is written into each sandbox: system roots plus the
	// platform CA the egress proxy intercepts HTTPS with.
	caBundle []byte
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
		d.sessions.SetService("sandbox", sandboxService{d: d, unavailable: reason})
	}
	if err := process.Available(); err != nil {
		off(err)
		return nil
	}
	// Not under the data dir: it is 0700, and the uid-mapped sandbox init
	// must be able to search the path to its root.
	dir, err := os.MkdirTemp("", "agentcloud-sandbox-")
	if err != nil {
		return fmt.Errorf("sandbox state dir: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("sandbox state dir: %w", err)
	}
	pt, err := process.New(process.Config{DataDir: dir, Logger: log.With("tier", sandbox.TierProcess)})
	if err != nil { // e.g. no usable cgroup hierarchy in this container
		_ = os.RemoveAll(dir)
		off(fmt.Errorf("process sandbox tier: %w", err))
		return nil
	}
	parts := &sandboxParts{dir: dir, tiers: []sandbox.Tier{pt}, caBundle: sandboxCABundle(d.sec.CA().Certificate())}
	d.sandboxes = parts
	var pools []sandbox.PoolConfig
	if d.cfg.SandboxPoolProcess > 0 {
		pools = append(pools, sandbox.PoolConfig{Tier: sandbox.TierProcess, Size: d.cfg.SandboxPoolProcess})
	}
	if err := gvisor.Available(""); err != nil {
		log.Warn("gvisor sandbox tier disabled", "reason", err)
	} else if gt, err := gvisor.New(gvisor.Config{DataDir: dir, Logger: log.With("tier", sandbox.TierGVisor)}); err != nil {
		log.Warn("gvisor sandbox tier disabled", "reason", err)
	} else {
		parts.tiers = append(parts.tiers, gt)
		if d.cfg.SandboxPoolGVisor > 0 {
			pools = append(pools, sandbox.PoolConfig{Tier: sandbox.TierGVisor, Size: d.cfg.SandboxPoolGVisor})
		}
	}
	parts.manager, err = sandbox.NewManager(sandbox.ManagerConfig{Tiers: parts.tiers, Pools: pools, Logger: log,
		DefaultTimeout: sandboxDefaultTimeout, Admission: newSandboxCaps(d.sec.TrustDomain(), d.cfg),
		NetworkHook: func(ctx context.Context, sb sandbox.Sandbox, ns string) (map[string]string, error) {
			return d.sandboxNetworkHook(ctx, parts, sb, ns)
		}, OnClose: func(id string) { d.closeSandboxNet(parts, id) }})
	if err != nil {
		return fmt.Errorf("sandbox manager: %w", err)
	}
	if err := parts.manager.Start(ctx); err != nil {
		return fmt.Errorf("start sandbox manager: %w", err)
	}
	d.sandboxDir.parts.Store(parts)
	create, visible := d.sandboxAccess(parts)
	sandboxhttp.New(sandboxhttp.Config{Manager: parts.manager, Tiers: parts.tiers, Logger: log,
		BeforeCreate: create, Visible: visible, Identity: func(id string) string {
			sid, _ := d.sec.SandboxID(id)
			return sid
		}}).Routes(d.router)
	d.sessions.SetService("sandbox", sandboxService{d: d, parts: parts})
	names := make([]string, len(parts.tiers))
	for i, t := range parts.tiers {
		names[i] = t.Name()
	}
	log.Info("sandboxes ready", "tiers", names, "dir", dir)
	return nil
}

// closeSandboxes deletes every sandbox, then closes the tiers and removes
// their state. It is safe to call when startSandboxes did not run or failed.
func (d *Daemon) closeSandboxes() {
	parts := d.sandboxes
	if parts == nil {
		return
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
	if err := errors.Join(errs...); err != nil {
		d.log.Warn("close sandboxes", "err", err)
	}
}
