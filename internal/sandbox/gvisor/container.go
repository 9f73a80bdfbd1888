//go:build linux

package gvisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/hostfs"
)

// container is one runsc container: a sandbox.Prepared, then a
// sandbox.Sandbox after Activate.
type container struct {
	hostfs.Files // file operations on c.fs, through c.fsys
	tier         *Tier
	cid          string
	template     string
	bundle       string
	rwDir        string // holds the workspace and tmp tmpfs mounts
	// wsDir, with Config.HostWorkspaceDir, is the host directory bound on
	// rwDir/workspace instead of a tmpfs; adopted once it has become the
	// sandbox's Spec.HostWorkspace (hostws.go).
	wsDir        string
	adopted      bool
	imageRootDir string // an image template's overlay root (image.go), "" for host
	// runscOverlay: the image root runs under runsc's own overlay (its
	// default --overlay2), its writes kept by the sentry, not in upper/:
	// a restore of a memory snapshot saved that way (image.go).
	runscOverlay bool
	noRelay      bool // the root has no python3 for the egress relay (image.go)

	nproc int // RLIMIT_NPROC the container was created with (exec.go)

	// The runsc sandbox process (sentry) on the host, watched through a
	// pidfd so that its death is noticed without asking runsc (health.go).
	sandboxPID int
	pidfd      int // -1 when not watched

	id string
	fs *hostfs.FS

	mu      sync.Mutex // guards spec, env, closed, paused, failure
	spec    sandbox.Spec
	env     []string
	closed  bool
	paused  bool
	failure *sandbox.FailedError // set once the sandbox has died (health.go)

	relayReady atomic.Bool // the egress relay listens (egress.go)

	agent *agent // the exec agent (agent.go); nil without one
}

var (
	_ sandbox.Sandbox  = (*container)(nil)
	_ sandbox.Prepared = (*container)(nil)
)

// prepareDirs creates the bundle and mounts the writable tmpfs dirs.
func (c *container) prepareDirs(diskMB int) error {
	if err := os.MkdirAll(c.bundle, 0o700); err != nil {
		return err
	}
	// root-owned 0755: the sandbox user may connect to the socket the daemon
	// puts there, but not create or remove anything.
	if err := os.MkdirAll(c.egressDir(), 0o755); err != nil {
		return err
	}
	for _, d := range []string{"workspace", "tmp"} {
		p := filepath.Join(c.rwDir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if d == "workspace" && c.tier.hostWS != "" {
			if err := c.hostWorkspace(p); err != nil {
				return err
			}
			continue
		}
		mode := "0755"
		if d == "tmp" {
			mode = "1777"
		}
		opts := fmt.Sprintf("size=%dm,mode=%s,uid=%d,gid=%d", diskMB, mode, sandbox.SandboxUID, sandbox.SandboxGID)
		if err := unix.Mount("agentcloud-sandbox", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("mount %s: %w", p, err)
		}
	}
	return nil
}

func (c *container) cleanupHost() {
	if c.agent != nil {
		c.agent.close()
	}
	for _, d := range []string{"workspace", "tmp"} {
		_ = unix.Unmount(filepath.Join(c.rwDir, d), unix.MNT_DETACH)
	}
	c.unmountImageRoot()
	_ = os.RemoveAll(c.bundle)
	if c.wsDir != "" && !c.adopted {
		_ = os.RemoveAll(c.wsDir)
	}
}

func (c *container) Template() string { return c.template }

// Activate applies limits (tmpfs size, cgroup values) and environment.
func (c *container) Activate(ctx context.Context, id string, spec sandbox.Spec) (sandbox.Sandbox, error) {
	spec.Tier, spec.Template = sandbox.TierGVisor, c.template
	spec.Limits = spec.Limits.WithDefaults()
	c.id, c.spec = id, spec
	if spec.Build && (c.imageRootDir == "" || c.runscOverlay) {
		// The steps' writes must land in the host upper dir the build
		// turns into a layer: an image root without runsc's own overlay.
		_ = c.destroy()
		return nil, fmt.Errorf("activate %s: build mode (template build steps) needs an image template: %w", id, sandbox.ErrUnsupported)
	}
	if spec.Limits.Pids != c.nproc && c.tier.prlimit == "" {
		_ = c.destroy()
		return nil, fmt.Errorf("activate %s: limits.pids %d differs from the default %d and the template has no %s to apply it: %w",
			id, spec.Limits.Pids, c.nproc, prlimitPath, sandbox.ErrUnsupported)
	}
	if spec.HostWorkspace != "" {
		if err := c.adopt(spec.HostWorkspace); err != nil {
			c.destroy()
			return nil, fmt.Errorf("activate %s: %w", id, err)
		}
	}
	for _, d := range []string{"workspace", "tmp"} {
		if d == "workspace" && c.wsDir != "" {
			continue // host storage: the Manager checks its quota
		}
		opts := fmt.Sprintf("size=%dm", spec.Limits.DiskMB)
		if err := unix.Mount("", filepath.Join(c.rwDir, d), "", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			c.destroy()
			return nil, fmt.Errorf("activate %s: resize %s: %w", id, d, err)
		}
	}
	c.setCgroupLimits(spec.Limits)
	var err error
	c.fs, err = hostfs.Open(c.rwDir, sandbox.SandboxUID, sandbox.SandboxGID)
	if err != nil {
		c.destroy()
		return nil, fmt.Errorf("activate %s: %w", id, err)
	}
	c.env = sandbox.MergeEnv(spec.Env)
	return c, nil
}

// setCgroupLimits rewrites the limits runsc set at creation, for sandboxes
// claimed from a pool with different limits. Best effort: the host cgroup
// bounds the whole sandbox (sentry included).
func (c *container) setCgroupLimits(l sandbox.Limits) {
	if l == sandbox.DefaultLimits {
		return
	}
	rel := "agentcloud-gvisor/" + c.cid
	_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes"), []byte(strconv.Itoa(hostMemoryMB(l)<<20)), 0)
	_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/pids", rel, "pids.max"), []byte(strconv.Itoa(hostPids(l))), 0)
	_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/cpu", rel, "cpu.cfs_quota_us"), []byte(strconv.Itoa(int(l.CPUs*100000))), 0)
}

func (c *container) Discard() error { return c.Close() }

// AddEnv adds variables to every later exec.
func (c *container) AddEnv(env map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	merged := map[string]string{}
	for k, v := range c.spec.Env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	c.spec.Env = merged
	c.env = sandbox.MergeEnv(merged)
}

func (c *container) ID() string   { return c.id }
func (c *container) Tier() string { return sandbox.TierGVisor }
func (c *container) Spec() sandbox.Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spec
}

func (c *container) usable() error {
	c.mu.Lock()
	closed, paused := c.closed, c.paused
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrClosed)
	}
	if err := c.Failure(); err != nil {
		return err
	}
	if paused {
		return fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrPaused)
	}
	return nil
}

func (c *container) fsys() (*hostfs.FS, error) {
	c.mu.Lock()
	closed, fs := c.closed, c.fs
	c.mu.Unlock()
	if closed || fs == nil {
		return nil, fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrClosed)
	}
	if err := c.Failure(); err != nil {
		return nil, err
	}
	return fs, nil
}

// Pause freezes the whole sandbox with runsc pause.
func (c *container) Pause(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	if _, err := c.tier.run(ctx, "pause", c.cid); err != nil {
		return fmt.Errorf("pause %s: %w", c.id, err)
	}
	c.mu.Lock()
	c.paused = true
	c.mu.Unlock()
	return nil
}

// Resume thaws it.
func (c *container) Resume(ctx context.Context) error {
	if _, err := c.tier.run(ctx, "resume", c.cid); err != nil {
		return fmt.Errorf("resume %s: %w", c.id, err)
	}
	c.mu.Lock()
	c.paused = false
	c.mu.Unlock()
	return nil
}

// NetNSPath is unsupported: with --network=none the sandbox's loopback is
// gVisor's own netstack, not a host network namespace. The egress proxy for
// this tier will be a host Unix socket bind-mounted into the sandbox (runsc
// --host-uds=open) with an in-sandbox forwarder on 127.0.0.1.
func (c *container) NetNSPath() (string, error) {
	return "", fmt.Errorf("gvisor netns: %w", sandbox.ErrUnsupported)
}

// Close kills the container and frees its state, mounts and cgroups.
func (c *container) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	return c.destroy()
}

func (c *container) destroy() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.tier.run(ctx, "resume", c.cid) // a paused sandbox cannot be killed cleanly
	if c.agent != nil {
		c.agent.close()
	}
	_, err := c.tier.run(ctx, "delete", "--force", c.cid)
	if c.fs != nil {
		c.fs.Close()
	}
	c.unwatch()
	c.cleanupHost()
	if err != nil {
		return fmt.Errorf("close %s: %w", c.id, err)
	}
	return nil
}
