//go:build linux

// Package gvisor is the gVisor sandbox tier: each sandbox is a runsc
// container whose system calls are served by gVisor's user-space kernel (the
// sentry) instead of the host kernel. It generates OCI bundles from the
// tier-neutral sandbox.Spec (same template view, limits and writable paths
// as the process tier), runs them with --network=none (loopback only), and
// drives them with runsc exec/ps/kill/pause/resume/delete. The systrap
// platform is used when the installed runsc has it, else ptrace.
//
// Files under /workspace and /tmp live on per-sandbox host tmpfs mounts
// bind-mounted into the container, so file operations are done from the host
// (internal/sandbox/hostfs) without a round trip through runsc. Everything
// the tier keeps on the host (bundles, those mounts, egress sockets, runsc
// state) lives below one directory of mode 0700 owned by the daemon's user,
// so no other host user can reach a sandbox's files or sockets; commands
// and environments go to runsc in files there (runsc exec --process), not
// on command lines that every host user can read.
//
// Limits: the container's memory cgroup holds the sandbox's processes, its
// files and the sandbox kernel; the number of tasks is bounded inside the
// sandbox by RLIMIT_NPROC (which gVisor enforces per user), and the host
// pids cgroup only backs that up; pid 1 runs as a user of its own (or root
// with three capabilities where it starts the exec agent, initpy.go), so no
// process of the sandbox user can signal it.
package gvisor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/hostfs"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// Config configures the gVisor tier. The zero value is usable.
type Config struct {
	// Runsc is the runsc binary; default DefaultRunsc().
	Runsc string
	// Platform forces a runsc platform ("systrap", "ptrace"); "" picks
	// systrap when available.
	Platform string
	// DataDir holds bundles and runsc state; default os.TempDir()/agentcloud-sandbox.
	DataDir string
	Logger  *slog.Logger
	// Images resolves image templates (nil: only the host template).
	Images sandbox.Images
	// HostWorkspaceDir, if set, keeps each sandbox's /workspace on host
	// storage (hostws.go): prepared directories live here, on the same
	// filesystem as the Manager's Dir, and become Spec.HostWorkspace.
	HostWorkspaceDir string
	// RemoveOnClose makes Close remove the tier's directory below DataDir
	// (and DataDir itself when it is a StateDir under /run) once runsc
	// lists no container there and nothing is mounted below it: a daemon's
	// clean stop. A root with containers left stays for the next start.
	RemoveOnClose bool
}

// Tier implements sandbox.Tier with runsc.
type Tier struct {
	log          *slog.Logger
	runsc        string
	platform     string
	ociSeccomp   bool
	noFastPath   bool   // --systrap-disable-fast-path (fastPathOff)
	egress       bool   // pid 1 forwards 127.0.0.1:3128 to a host socket (egress.go)
	prlimit      string // the template's prlimit(1), "" if it has none (exec.go)
	stateDir     string // runsc --root
	bundlesDir   string
	templateRoot string
	noAgent      bool     // benchmarks: every command through runsc exec
	noWarm       bool     // benchmarks: pooled containers are not warmed (warm.go)
	runscOverlay bool     // benchmarks: image roots under runsc's own overlay (container.runscOverlay)
	benchFlags   []string // benchmarks: more global runsc flags (BenchmarkExecPythonFlags)
	hostWS       string   // Config.HostWorkspaceDir
	base         string   // <DataDir>/gvisor
	removeDirs   []string // Config.RemoveOnClose: base, then DataDir when under /run
	images       sandbox.Images
	lock         *os.File // the root's lock while this tier owns it (stale.go)

	mu     sync.Mutex // guards closed
	closed bool
}

var _ sandbox.Tier = (*Tier)(nil)

// PinnedRunsc is where scripts/deps.sh installs the pinned runsc release
// (RunscVersion, built from the Go module proxy with its checksum
// verified): a current gVisor with the systrap platform. Debian's runsc in
// the PATH is the fallback.
const (
	PinnedRunsc  = "/usr/local/lib/agentcloud/runsc"
	RunscVersion = "v0.0.0-20260905035102-160fafc42237"
)

// DefaultRunsc is the runsc the tier uses when Config.Runsc is empty:
// $AGENTCLOUD_RUNSC, else PinnedRunsc when installed, else "runsc" from
// the PATH.
func DefaultRunsc() string {
	if p := os.Getenv("AGENTCLOUD_RUNSC"); p != "" {
		return p
	}
	if fi, err := os.Stat(PinnedRunsc); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return PinnedRunsc
	}
	return "runsc"
}

// Available reports why the tier cannot run here, or nil.
func Available(runsc string) error {
	if runsc == "" {
		runsc = DefaultRunsc()
	}
	if _, err := exec.LookPath(runsc); err != nil {
		return fmt.Errorf("runsc not installed: %w", sandbox.ErrUnavailable)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("gvisor tier runs runsc as root: %w", sandbox.ErrUnavailable)
	}
	return nil
}

// Optional is the tier on the default runsc, or nil (the reason logged on
// cfg.Logger) when this host cannot run it: the daemon runs on without it.
func Optional(cfg Config) *Tier {
	err := Available("")
	if err == nil {
		var t *Tier
		if t, err = New(cfg); err == nil {
			return t
		}
	}
	if cfg.Logger != nil {
		cfg.Logger.Warn("gvisor sandbox tier disabled", "reason", err)
	}
	return nil
}

// New detects runsc's features and prepares the data directories.
func New(cfg Config) (*Tier, error) {
	if err := Available(cfg.Runsc); err != nil {
		return nil, err
	}
	if cfg.Runsc == "" {
		cfg.Runsc = DefaultRunsc()
	}
	path, _ := exec.LookPath(cfg.Runsc)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(os.TempDir(), "agentcloud-sandbox")
	}
	// Private: only the daemon's user (and runsc, as root) may enter. The
	// sandbox's own processes never see host paths; the gofer opens them.
	base := filepath.Join(cfg.DataDir, "gvisor")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, fmt.Errorf("gvisor data dir: %w", err)
	}
	if err := os.Chmod(base, 0o700); err != nil {
		return nil, fmt.Errorf("gvisor data dir: %w", err)
	}
	t := &Tier{
		images:       cfg.Images,
		log:          cfg.Logger,
		runsc:        path,
		platform:     cfg.Platform,
		stateDir:     filepath.Join(base, "state"),
		bundlesDir:   filepath.Join(base, "bundles"),
		templateRoot: filepath.Join(base, "template-host"),
		hostWS:       cfg.HostWorkspaceDir,
		base:         base,
	}
	if cfg.RemoveOnClose {
		t.removeDirs = []string{base}
		if InRunDir(cfg.DataDir) {
			t.removeDirs = append(t.removeDirs, cfg.DataDir)
		}
	}
	if err := t.resetHostWorkspaces(); err != nil {
		return nil, err
	}
	for _, d := range []string{t.stateDir, t.bundlesDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("gvisor data dir: %w", err)
		}
	}
	if fi, err := os.Stat(prlimitPath); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		t.prlimit = prlimitPath
	}
	if err := buildTemplateRoot(t.templateRoot); err != nil {
		return nil, fmt.Errorf("gvisor template root: %w", err)
	}
	platforms, _ := exec.Command(path, "help", "platforms").CombinedOutput()
	if t.platform == "" {
		t.platform = "ptrace"
		if bytes.Contains(platforms, []byte("systrap")) {
			t.platform = "systrap"
		}
	}
	flags, _ := exec.Command(path, "flags").CombinedOutput()
	t.ociSeccomp = bytes.Contains(flags, []byte("-oci-seccomp"))
	t.noFastPath = t.platform == "systrap" && bytes.Contains(flags, []byte("-systrap-disable-fast-path")) && fastPathOff(runtime.NumCPU())
	t.egress = bytes.Contains(flags, []byte("-host-uds")) && forwarderAvailable()
	t.log.Info("gvisor tier", "runsc", path, "platform", t.platform, "oci_seccomp", t.ociSeccomp, "egress", t.egress, "systrap_fast_path", !t.noFastPath)
	if t.lockRoot() {
		t.removeStale()
	}
	return t, nil
}

// Platform reports the runsc platform in use.
func (t *Tier) Platform() string { return t.platform }

// Name returns sandbox.TierGVisor.
func (t *Tier) Name() string { return sandbox.TierGVisor }

// Templates lists the supported templates.
func (t *Tier) Templates() []string {
	if t.images == nil {
		return []string{sandbox.TemplateHost}
	}
	return append([]string{sandbox.TemplateHost}, t.images.ImageNames()...)
}

// Close marks the tier closed; sandboxes must be closed by their owners.
// It unmounts the empty network namespace that current runsc releases pin
// in their state directory (runsc's own UnmountNullNetNS), so the
// directory can be removed; concurrent runsc calls may stack the mount.
func (t *Tier) Close() error {
	t.mu.Lock()
	t.closed = true
	lock := t.lock
	t.lock = nil
	t.mu.Unlock()
	defer atomicfile.Unlock(lock)
	for i := 0; i < 64 && unix.Unmount(filepath.Join(t.stateDir, "null-netns"), unix.MNT_DETACH) == nil; i++ {
	}
	if lock == nil {
		return nil // closed before, or never locked the root
	}
	if err := t.leftovers(); err != nil {
		return err // the root stays for the next start's removeStale
	}
	// Never remove through a mount: a sandbox's workspace is bound below.
	if len(t.removeDirs) > 0 && process.DetachMountsBelow(t.base) {
		if err := os.RemoveAll(t.removeDirs[0]); err != nil {
			return fmt.Errorf("gvisor: remove %s: %w", t.removeDirs[0], err)
		}
		for _, d := range t.removeDirs[1:] {
			_ = os.Remove(d) // empty now
		}
	}
	return nil
}

// ErrContainersLeft: Close found containers in the runsc root (a delete
// that failed or ran past its limit). The root must then be kept, so the
// next daemon's removeStale finds and removes them.
var ErrContainersLeft = errors.New("gvisor: containers left in the runsc root")

// leftovers returns ErrContainersLeft when the runsc root still lists a
// container, or runsc cannot say.
func (t *Tier) leftovers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := t.run(ctx, "list", "-quiet")
	if err != nil {
		return fmt.Errorf("%w: list: %w", ErrContainersLeft, err)
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		return fmt.Errorf("%w: %s", ErrContainersLeft, strings.Join(ids, " "))
	}
	return nil
}

// fastPathOff reports whether a host with cpus CPUs runs systrap without
// its fast path, where the sentry and the sandbox's stub threads spin
// waiting for each other instead of sleeping on a futex: spinning pays
// only with idle CPUs to spin on, and a host of few CPUs running many
// sandboxes (and the daemon) has none. On 2 CPUs a warm python3 exec was
// 15-20 % faster without it (docs/PERFORMANCE.md); the fast path is a
// wait strategy only: system calls, seccomp filters and every other flag
// are the same.
func fastPathOff(cpus int) bool { return cpus <= 4 }

// runscArgs prefixes the global flags every runsc call needs.
func (t *Tier) runscArgs(args ...string) []string {
	g := []string{"--root", t.stateDir, "--network=none", "--platform=" + t.platform}
	if t.egress {
		g = append(g, "--host-uds=open")
	}
	if t.ociSeccomp {
		g = append(g, "--oci-seccomp")
	}
	if t.noFastPath {
		g = append(g, "--systrap-disable-fast-path")
	}
	g = append(g, t.benchFlags...)
	return append(g, args...)
}

// runDetached runs a runsc subcommand that leaves processes behind (run
// --detach, exec --detach): they would inherit and hold any stdio pipe, so
// output goes to a log file instead. global are more global flags (the
// container's runscFlags).
func (t *Tier) runDetached(ctx context.Context, logPath string, global []string, args ...string) error {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, t.runsc, t.runscArgs(append(global[:len(global):len(global)], args...)...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("runsc %s: %w: %s", args[0], err, lastLines(string(b), 3))
	}
	return nil
}

// runscStartWait bounds a `runsc run` or `restore --detach`.
const runscStartWait = time.Minute

// startDetached runs runsc's args (run or restore, detached) for c to
// completion even when ctx ends meanwhile (a pool's prepare is cancelled
// when the Manager closes): runsc killed halfway would leave a sandbox
// process and its cgroups that no state names. On a failure, or when ctx
// ended, c is destroyed — the container deleted, not only its host files.
func (t *Tier) startDetached(ctx context.Context, c *container, args ...string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runscStartWait)
	err := t.runDetached(rctx, filepath.Join(c.bundle, "run.log"), c.runscFlags(), args...)
	cancel()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		_ = c.destroy()
	}
	return err
}

// runsc runs a runsc subcommand to completion.
func (t *Tier) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, t.runsc, t.runscArgs(args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("runsc %s: %w: %s", args[0], err, strings.TrimSpace(lastLines(stderr.String(), 3)))
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ac-" + hex.EncodeToString(b[:])
}

// Prepare creates a bundle and starts the container with default limits.
func (t *Tier) Prepare(ctx context.Context, template string) (sandbox.Prepared, error) {
	return t.prepare(ctx, template, "", nil)
}

// prepare is Prepare, an image root's upper dir a copy of upper when set
// (image.go), with vols bind-mounted into the container (volumes.go).
func (t *Tier) prepare(ctx context.Context, template, upper string, vols []sandbox.VolumeMount) (sandbox.Prepared, error) {
	c, err := t.setup(template, sandbox.DefaultLimits, "", upper, vols)
	if err != nil {
		return nil, err
	}
	pidFile := filepath.Join(c.bundle, "sandbox.pid")
	if err := t.startDetached(ctx, c, "run", "--detach", "--pid-file", pidFile, "--bundle", c.bundle, c.cid); err != nil {
		return nil, fmt.Errorf("prepare gvisor sandbox: %w", err)
	}
	if err := c.started(ctx, pidFile, agentStartWait); err != nil {
		return nil, err
	}
	if sandbox.IsForPool(ctx) && !t.noWarm {
		if err := c.warm(ctx); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("prepare gvisor sandbox: %w", err)
		}
	}
	return c, nil
}

// How long a container's exec agent may take to connect: a new one is
// started by the new pid 1, a restored one only connects again.
const (
	agentStartWait   = 10 * time.Second
	agentRestoreWait = 3 * time.Second
)

// started watches a container runsc has just started (run or restore)
// and waits up to wait for its exec agent; on failure the container is
// destroyed.
func (c *container) started(ctx context.Context, pidFile string, wait time.Duration) error {
	if err := c.watch(pidFile); err != nil {
		_ = c.destroy()
		return fmt.Errorf("prepare gvisor sandbox: %w", err)
	}
	c.waitAgent(ctx, wait)
	return nil
}

// setup makes a container's bundle for template with limits l: its
// directories, mounts (the workspace seeded from seed, an image root's
// upper dir from upper, if not "", and vols) and OCI spec. Nothing runs
// yet.
func (t *Tier) setup(template string, l sandbox.Limits, seed, upper string, vols []sandbox.VolumeMount) (*container, error) {
	if template == "" {
		template = sandbox.TemplateHost
	}
	var layers []string
	if template != sandbox.TemplateHost {
		if t.images == nil {
			return nil, fmt.Errorf("gvisor template %q: %w", template, sandbox.ErrUnknownTemplate)
		}
		var err error
		if layers, err = t.images.ImageLayers(template); err != nil {
			return nil, fmt.Errorf("gvisor template %q: %w", template, err)
		}
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("gvisor tier: %w", sandbox.ErrClosed)
	}
	c := &container{tier: t, cid: randomID(), template: template, pidfd: -1, nproc: l.Pids, runscOverlay: t.runscOverlay}
	c.Files = hostfs.Files{Open: c.fsys}
	c.bundle = filepath.Join(t.bundlesDir, c.cid)
	c.rwDir = filepath.Join(c.bundle, "rw")
	if err := c.prepareDirs(l.DiskMB); err != nil {
		c.cleanupHost()
		return nil, err
	}
	if seed != "" {
		if err := sandbox.SeedWorkspace(seed, c.WorkspacePath()); err != nil {
			c.cleanupHost()
			return nil, fmt.Errorf("gvisor sandbox workspace: %w", err)
		}
	}
	spec := ociSpec(t.templateRoot, c.rwDir, l, t.ociSeccomp)
	if layers != nil {
		if err := c.imageRoot(spec, layers, upper); err != nil {
			c.cleanupHost()
			return nil, fmt.Errorf("prepare gvisor sandbox: %w", err)
		}
	}
	spec.Mounts = append(spec.Mounts, volumeMounts(vols)...)
	c.noRelay = !c.hasProgram(forwarderPython) // an image without python3 has no egress relay
	if t.egress && !c.noRelay {
		agent := agentPy
		if t.noAgent {
			agent = ""
		}
		initProcess(spec.Process, agent)
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: egressMount, Type: "bind", Source: c.egressDir(),
			Options: []string{"rbind", "rw", "nosuid", "nodev", "noexec"}})
	}
	spec.Linux.CgroupsPath = "/agentcloud-gvisor/" + c.cid
	if err := writeSpec(c.bundle, spec); err != nil {
		c.cleanupHost()
		return nil, err
	}
	if err := c.listenAgent(); err != nil {
		c.cleanupHost()
		return nil, err
	}
	return c, nil
}
