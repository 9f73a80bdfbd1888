//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/hostfs"
)

// container is one runsc container: a sandbox.Prepared, then a
// sandbox.Sandbox after Activate.
type container struct {
	tier     *Tier
	cid      string
	template string
	bundle   string
	rwDir    string // holds the workspace and tmp tmpfs mounts

	id string
	fs *hostfs.FS

	mu     sync.Mutex // guards spec, env, closed, paused
	spec   sandbox.Spec
	env    []string
	closed bool
	paused bool

	relayReady atomic.Bool // the egress relay listens (egress.go)
}

var (
	_ sandbox.Sandbox  = (*container)(nil)
	_ sandbox.Prepared = (*container)(nil)
)

// prepareDirs creates the bundle and mounts the writable tmpfs dirs.
func (c *container) prepareDirs(diskMB int) error {
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
	for _, d := range []string{"workspace", "tmp"} {
		_ = unix.Unmount(filepath.Join(c.rwDir, d), unix.MNT_DETACH)
	}
	_ = os.RemoveAll(c.bundle)
}

func (c *container) Template() string { return c.template }

// Activate applies limits (tmpfs size, cgroup values) and environment.
func (c *container) Activate(ctx context.Context, id string, spec sandbox.Spec) (sandbox.Sandbox, error) {
	spec.Tier, spec.Template = sandbox.TierGVisor, c.template
	spec.Limits = spec.Limits.WithDefaults()
	c.id, c.spec = id, spec
	for _, d := range []string{"workspace", "tmp"} {
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
	_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes"), []byte(strconv.Itoa((l.MemoryMB+sentryMemoryOverhead)<<20)), 0)
	_ = os.WriteFile(filepath.Join("/sys/fs/cgroup/pids", rel, "pids.max"), []byte(strconv.Itoa(l.Pids+sentryPidsOverhead)), 0)
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
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrClosed)
	}
	if c.paused {
		return fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrPaused)
	}
	return nil
}

// execArgs builds "runsc exec" arguments for es.
func (c *container) execArgs(es sandbox.ExecSpec, extra ...string) []string {
	c.mu.Lock()
	base := c.env
	c.mu.Unlock()
	env := mergeEnv(base, es.Env)
	cwd := es.Cwd
	if cwd == "" {
		cwd = sandbox.WorkspaceDir
	}
	args := []string{"exec", "--user", fmt.Sprintf("%d:%d", sandbox.SandboxUID, sandbox.SandboxGID), "--cwd", cwd}
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	args = append(args, extra...)
	args = append(args, c.cid, es.Cmd)
	return append(args, es.Args...)
}

func mergeEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	m := map[string]string{}
	for _, kv := range base {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return sandbox.MergeEnv(m, extra)
}

// Exec runs a process via runsc exec, streaming its output.
func (c *container) Exec(ctx context.Context, es sandbox.ExecSpec, stdout, stderr io.Writer) (int, error) {
	if err := c.usable(); err != nil {
		return -1, err
	}
	if err := c.waitForwarder(ctx); err != nil {
		return -1, err
	}
	pidFile := filepath.Join(c.bundle, "exec-"+randomID()+".pid")
	defer os.Remove(pidFile)
	cmd := exec.Command(c.tier.runsc, c.tier.runscArgs(c.execArgs(es, "--internal-pid-file", pidFile)...)...)
	if es.Stdin != nil {
		cmd.Stdin = es.Stdin
	}
	var wmu sync.Mutex
	cmd.Stdout = lockedWriter{&wmu, orDiscard(stdout)}
	cmd.Stderr = lockedWriter{&wmu, orDiscard(stderr)}
	cmd.WaitDelay = 250 * time.Millisecond
	oom0 := c.oomKills()
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("exec %s: %w", es.Cmd, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr, ctxErr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		c.killExec(pidFile)
		select {
		case werr = <-waited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			werr = <-waited
		}
	}
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	switch {
	case ctxErr == context.DeadlineExceeded:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, sandbox.ErrTimeout)
	case ctxErr != nil:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, ctxErr)
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) && !errors.Is(werr, exec.ErrWaitDelay) {
		return code, fmt.Errorf("exec %s: %w", es.Cmd, werr)
	}
	if code == 128 && !c.running() {
		return code, fmt.Errorf("exec %s: gvisor sandbox stopped: %w", es.Cmd, sandbox.ErrClosed)
	}
	if code != 0 {
		if c.oomKills() > oom0 || code == 137 && c.memoryNearLimit() {
			return code, fmt.Errorf("exec %s: %w", es.Cmd, sandbox.ErrMemoryLimit)
		}
		var full []string
		for _, root := range []string{sandbox.WorkspaceDir, sandbox.TmpDir} {
			if free, err := c.fs.FreeBytes(root); err == nil && free < 64<<10 {
				full = append(full, root)
			}
		}
		if len(full) > 0 {
			return code, fmt.Errorf("exec %s: %w (%s full)", es.Cmd, sandbox.ErrDiskLimit, strings.Join(full, " and "))
		}
	}
	return code, nil
}

// running asks runsc whether the container is still up.
func (c *container) running() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.tier.run(ctx, "state", c.cid)
	return err == nil && (bytes.Contains(out, []byte(`"running"`)) || bytes.Contains(out, []byte(`"paused"`)))
}

func (c *container) cgroupFile(ctrl, name string) string {
	return filepath.Join("/sys/fs/cgroup", ctrl, "agentcloud-gvisor", c.cid, name)
}

func (c *container) oomKills() int64 {
	b, err := os.ReadFile(c.cgroupFile("memory", "memory.oom_control"))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

func (c *container) memoryNearLimit() bool {
	read := func(name string) int64 {
		b, _ := os.ReadFile(c.cgroupFile("memory", name))
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n
	}
	limit, peak := read("memory.limit_in_bytes"), read("memory.max_usage_in_bytes")
	return limit > 0 && peak >= limit*9/10
}

// killExec kills the process started by an exec (by its pid inside the
// sandbox) and its process group.
func (c *container) killExec(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid := strings.TrimSpace(string(b))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = c.tier.run(ctx, "kill", "--pid", pid, c.cid, "KILL")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Start runs a background process with runsc exec --detach.
func (c *container) Start(ctx context.Context, es sandbox.ExecSpec) (int, error) {
	if err := c.usable(); err != nil {
		return -1, err
	}
	if err := c.waitForwarder(ctx); err != nil {
		return -1, err
	}
	if es.OutputFile != "" {
		if _, _, err := sandbox.ResolvePath(es.OutputFile); err != nil {
			return -1, err
		}
		es.Args = append([]string{"-c", `exec "$0" "$@" >>"$AGENTCLOUD_OUTPUT" 2>&1`, es.Cmd}, es.Args...)
		es.Cmd = "/bin/sh"
		env := map[string]string{"AGENTCLOUD_OUTPUT": es.OutputFile}
		for k, v := range es.Env {
			env[k] = v
		}
		es.Env = env
	}
	// runsc exec --detach of this runsc release passes its own flags to
	// the command; a runsc exec left running on the host instead serves the
	// process until it exits.
	pidFile := filepath.Join(c.bundle, "start-"+randomID()+".pid")
	cmd := exec.Command(c.tier.runsc, c.tier.runscArgs(c.execArgs(es, "--internal-pid-file", pidFile)...)...)
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("start %s: %w", es.Cmd, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
		os.Remove(pidFile)
	}()
	for {
		if b, err := os.ReadFile(pidFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
			if err != nil {
				return -1, fmt.Errorf("start %s: pid %q: %w", es.Cmd, b, err)
			}
			return pid, nil
		}
		select {
		case <-exited:
			return -1, fmt.Errorf("start %s: runsc exec exited: %v", es.Cmd, cmd.ProcessState)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return -1, fmt.Errorf("start %s: %w", es.Cmd, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Processes lists processes via runsc ps, leaving out pid 1.
func (c *container) Processes(ctx context.Context) ([]sandbox.Process, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	out, err := c.tier.run(ctx, "ps", c.cid)
	if err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	// UID PID PPID C STIME TIME CMD
	var res []sandbox.Process
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 7 {
			continue
		}
		pid, err1 := strconv.Atoi(f[1])
		ppid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || pid == 1 {
			continue
		}
		res = append(res, sandbox.Process{PID: pid, PPID: ppid, Cmdline: f[6:], State: "R"})
	}
	return res, nil
}

// Signal signals one process.
func (c *container) Signal(ctx context.Context, pid int, sig os.Signal) error {
	if err := c.usable(); err != nil {
		return err
	}
	s, ok := sig.(syscall.Signal)
	if !ok || pid <= 1 {
		return fmt.Errorf("signal %d %v: %w", pid, sig, unix.EPERM)
	}
	if _, err := c.tier.run(ctx, "kill", "--pid", strconv.Itoa(pid), c.cid, strconv.Itoa(int(s))); err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

func (c *container) fsys() (*hostfs.FS, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.fs == nil {
		return nil, fmt.Errorf("sandbox %s: %w", c.id, sandbox.ErrClosed)
	}
	return c.fs, nil
}

func (c *container) WriteFile(ctx context.Context, p string, r io.Reader, perm fs.FileMode) error {
	f, err := c.fsys()
	if err != nil {
		return err
	}
	return f.WriteFile(ctx, p, r, perm)
}

func (c *container) ReadFile(ctx context.Context, p string, w io.Writer) error {
	f, err := c.fsys()
	if err != nil {
		return err
	}
	return f.ReadFile(ctx, p, w)
}

func (c *container) List(ctx context.Context, p string) ([]sandbox.FileInfo, error) {
	f, err := c.fsys()
	if err != nil {
		return nil, err
	}
	return f.List(ctx, p)
}

func (c *container) Stat(ctx context.Context, p string) (sandbox.FileInfo, error) {
	f, err := c.fsys()
	if err != nil {
		return sandbox.FileInfo{}, err
	}
	return f.Stat(ctx, p)
}

func (c *container) Mkdir(ctx context.Context, p string, perm fs.FileMode) error {
	f, err := c.fsys()
	if err != nil {
		return err
	}
	return f.Mkdir(ctx, p, perm)
}

func (c *container) Remove(ctx context.Context, p string) error {
	f, err := c.fsys()
	if err != nil {
		return err
	}
	return f.Remove(ctx, p)
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
	_, err := c.tier.run(ctx, "delete", "--force", c.cid)
	if c.fs != nil {
		c.fs.Close()
	}
	c.cleanupHost()
	if err != nil {
		return fmt.Errorf("close %s: %w", c.id, err)
	}
	return nil
}
