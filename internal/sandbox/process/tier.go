//go:build linux

// Package process is the process sandbox tier: each sandbox is a tree of
// ordinary host processes confined by Linux itself. Its init (package
// sbinit) is a small binary embedded in this one (initexe.go), or this very
// binary re-executed when the build carries none, started by the tier's
// spawner (spawner.go) in new user (unprivileged, mapped), pid, mount,
// network, ipc and uts namespaces; it pivots into a template
// root (read-only host /usr, /bin, /lib*, /etc with secrets masked, fresh
// /proc, minimal /dev, size-limited tmpfs /workspace and /tmp), drops to an
// unprivileged uid, sets no_new_privs, installs a seccomp filter and a
// Landlock ruleset, and then spawns the commands the host asks for over a
// socketpair, passing their stdio pipes straight through. Cgroups (v1 and
// v2) bound memory, CPU and pids, freeze for pause, and kill for close; they
// are pre-created in a pool.
//
// The package does not pool sandboxes (sandbox.Manager does, through
// Prepare/Activate) and does not provide networking beyond loopback (see
// sandbox.NetworkHook).
package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/hostfs"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

// Config configures the process tier. The zero value is usable.
type Config struct {
	// DataDir holds the tier's state (an empty mount point for new roots).
	// Default: os.TempDir()/agentcloud-sandbox.
	DataDir string
	// CgroupPool is the number of cgroup sets kept pre-created. Default 4.
	CgroupPool int
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Images resolves image templates (nil: only the host template). Each
	// sandbox of one gets a writable overlay over the template's layers.
	Images sandbox.Images
}

// Tier implements sandbox.Tier with namespaces, seccomp, landlock and
// cgroups.
type Tier struct {
	log     *slog.Logger
	rootDir string
	rwDir   string // per-sandbox overlay upper dirs of image templates
	images  sandbox.Images
	cg      *cgroupPool
	spawn   *spawner
	netns   *netnsKeeper // network namespaces of closed sandboxes, released when quiet
	uidSeq  atomic.Uint32
	wg      sync.WaitGroup // background cgroup removals

	forkIdmap forkIdmap // whether fork copies' layers can be idmapped (workspace_fork.go)

	mu     sync.Mutex // guards closed
	closed bool
}

var _ sandbox.Tier = (*Tier)(nil)

// uidBase is the first host uid handed to sandboxes; each sandbox gets its
// own range of 65536 ids so two sandboxes never share a host uid.
const (
	uidBase   = 1 << 28
	uidRanges = 4096
	uidSize   = sbinit.UIDRange
)

// Available reports why the tier cannot run on this host, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("process tier needs root to map uids and manage cgroups: %w", sandbox.ErrUnavailable)
	}
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		return fmt.Errorf("user namespaces: %w", sandbox.ErrUnavailable)
	}
	return nil
}

// New checks the host and starts the cgroup pool.
func New(cfg Config) (*Tier, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(os.TempDir(), "agentcloud-sandbox")
	}
	if cfg.CgroupPool <= 0 {
		cfg.CgroupPool = 4
	}
	root := filepath.Join(cfg.DataDir, "process", "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("process tier data dir: %w", err)
	}
	// The uid-mapped init must be able to reach the mount point.
	for d := root; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			return nil, fmt.Errorf("process tier: %s must be searchable by others (mode o+x)", d)
		}
	}
	cg, err := newCgroupPool(cfg.CgroupPool, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("process tier cgroups: %w", err)
	}
	t := &Tier{log: cfg.Logger, rootDir: root, rwDir: filepath.Join(cfg.DataDir, "process", "rw"), images: cfg.Images, cg: cg,
		spawn: &spawner{log: cfg.Logger}, netns: newNetnsKeeper(netnsQuiet, netnsMaxAge, netnsMax, time.Now)}
	t.netns.start()
	return t, nil
}

// Name returns sandbox.TierProcess.
func (t *Tier) Name() string { return sandbox.TierProcess }

// Templates lists the supported templates.
func (t *Tier) Templates() []string {
	if t.images == nil {
		return []string{sandbox.TemplateHost}
	}
	return append([]string{sandbox.TemplateHost}, t.images.ImageNames()...)
}

// Close stops the cgroup pool and waits for background cleanup.
func (t *Tier) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cg.close()
	t.wg.Wait()
	t.spawn.close()
	t.netns.close()
	return nil
}

// hostTemplate describes the "host" template: the host's system dirs
// read-only, with files that hold secrets masked.
func hostTemplate(rootDir string) (*setupConfig, error) {
	cfg := &setupConfig{RootDir: rootDir, Symlinks: map[string]string{}, ShmMB: sandbox.ShmMB}
	for _, p := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"} {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			cfg.Symlinks[p] = target
		case fi.IsDir():
			cfg.Binds = append(cfg.Binds, p)
		}
	}
	cfg.Masks = []string{
		"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
		"/etc/sudoers", "/etc/sudoers.d", "/etc/ssh", "/etc/ssl/private",
		"/etc/security/opasswd", "/etc/machine-id",
	}
	return cfg, nil
}

// Prepare starts a sandbox init in fresh namespaces and builds its root; the
// result waits in the Manager's pool until Activate.
func (t *Tier) Prepare(ctx context.Context, template string) (sandbox.Prepared, error) {
	return t.prepare(ctx, template, "")
}

// PrepareWithUpper is Prepare for a sandbox of an image template whose
// overlay upper dir starts as a copy of upper (a snapshot's or a forked
// sandbox's: sandbox.UpperPreparer); the host template has none. Volumes
// are mounted at activation: vols is not used here.
func (t *Tier) PrepareWithUpper(ctx context.Context, template, upper string, _ []sandbox.VolumeMount) (sandbox.Prepared, error) {
	return t.prepare(ctx, template, upper)
}

func (t *Tier) prepare(ctx context.Context, template, upper string) (sandbox.Prepared, error) {
	if template == "" {
		template = sandbox.TemplateHost
	}
	var layers []string
	if template != sandbox.TemplateHost {
		if t.images == nil {
			return nil, fmt.Errorf("process tier template %q: %w", template, sandbox.ErrUnknownTemplate)
		}
		var err error
		if layers, err = t.images.ImageLayers(template); err != nil {
			return nil, fmt.Errorf("process tier template %q: %w", template, err)
		}
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("process tier: %w", sandbox.ErrClosed)
	}
	defer t.netns.busy()()
	setup, err := hostTemplate(t.rootDir)
	if err != nil {
		return nil, err
	}
	cg, err := t.cg.get()
	if err != nil {
		return nil, err
	}
	if sandbox.IsForPool(ctx) {
		// Before init joins the set, so its start-up runs at this weight.
		if err := cg.setBackground(true); err != nil {
			t.release(cg)
			return nil, fmt.Errorf("prepare sandbox: %w", err)
		}
	}
	b, err := t.startInit(ctx, cg)
	if err != nil {
		t.release(cg)
		return nil, err
	}
	b.template = template
	var files []*os.File
	if layers != nil {
		if setup, files, err = t.imageSetup(b, layers, upper); err != nil {
			b.destroy()
			return nil, fmt.Errorf("prepare sandbox: %w", err)
		}
	}
	setup.Pool = sandbox.IsForPool(ctx)
	_, err = b.call(ctx, &message{Op: opSetup, Setup: setup}, files...)
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		b.destroy()
		return nil, fmt.Errorf("prepare sandbox: %w%s", err, b.stderrTail())
	}
	return b, nil
}

// startInit starts a sandbox init through the tier's spawner.
func (t *Tier) startInit(ctx context.Context, cg *cgroupSet) (*box, error) {
	hostSock, childSock, err := socketpair()
	if err != nil {
		return nil, err
	}
	defer childSock.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		hostSock.Close()
		return nil, err
	}
	base := uidBase + int(t.uidSeq.Add(1)%uidRanges)*uidSize
	proc, err := t.spawn.start(ctx, base, childSock, errW)
	errW.Close()
	if err != nil {
		hostSock.Close()
		errR.Close()
		return nil, fmt.Errorf("start sandbox init: %w", err)
	}
	stderr := &tailBuffer{max: 4096}
	b := &box{
		tier:       t,
		proc:       proc,
		pid:        proc.pid,
		cg:         cg,
		hostUID:    base + sandbox.SandboxUID,
		hostGID:    base + sandbox.SandboxGID,
		stderr:     stderr,
		stderrDone: make(chan struct{}),
		done:       proc.done,
		calls:      map[uint64]chan *message{},
		exits:      map[uint64]chan *message{},
	}
	b.Files = hostfs.Files{Open: b.fsys}
	go func() {
		_, _ = io.Copy(stderr, errR)
		errR.Close()
		close(b.stderrDone)
	}()
	// Into the cgroups before init runs anything but its own setup.
	if err := cg.attach(b.pid); err != nil {
		hostSock.Close()
		b.cg = nil
		b.kill()
		t.release(cg)
		return nil, err
	}
	b.ctl, err = newConn(hostSock)
	if err != nil {
		b.destroy()
		return nil, err
	}
	go b.readLoop()
	return b, nil
}

// release kills what is left in a cgroup set and removes it in the
// background.
func (t *Tier) release(cg *cgroupSet) {
	if cg == nil {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := cg.kill(ctx); err != nil {
			t.log.Warn("kill sandbox cgroup", "cgroup", cg.name, "err", err)
		}
		if err := cg.destroy(); err != nil {
			t.log.Warn("remove sandbox cgroup", "cgroup", cg.name, "err", err)
		}
	}()
}

// tailBuffer keeps the last max bytes written to it (init's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

var errInitDied = errors.New("sandbox init exited")
