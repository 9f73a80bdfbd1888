//go:build linux

package gvisor

// Processes in a gVisor sandbox: runsc exec, ps and kill. What to run (the
// command, its arguments and environment) goes to runsc exec in a process
// file in the sandbox's private bundle directory (--process), so no host
// user can read it from /proc/PID/cmdline.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// prlimitPath is util-linux's prlimit(1) in the host template. A sandbox
// claimed from a pool was created with the default RLIMIT_NPROC, which
// runsc exec processes inherit; when its spec asks for another pids limit,
// each command runs as "prlimit --nproc=N:N -- CMD ARGS" (prlimit sets the
// limit on itself and execs the command in the same process).
const prlimitPath = "/usr/bin/prlimit"

// buildCaps are the capabilities of a build sandbox's processes: those
// the process tier's build mode keeps (sbinit.BuildCaps, in the same
// order; TestBuildCapsMatchProcessTier), by their OCI names.
var buildCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"}

// processSpec is what runsc exec runs for es: as the sandbox user with no
// capability, or in a build sandbox (Spec.Build) as root of the sandbox's
// kernel with buildCaps only (bounding set included, so no exec or setuid
// program brings another back).
func (c *container) processSpec(es sandbox.ExecSpec) *specs.Process {
	c.mu.Lock()
	base, pids, build := c.env, c.spec.Limits.Pids, c.spec.Build
	c.mu.Unlock()
	cwd := es.Cwd
	if cwd == "" {
		cwd = sandbox.WorkspaceDir
	}
	args := append([]string{es.Cmd}, es.Args...)
	if pids != c.nproc {
		n := strconv.Itoa(pids)
		args = append([]string{c.tier.prlimit, "--nproc=" + n + ":" + n, "--"}, args...)
	}
	p := &specs.Process{
		Args: args,
		Env:  mergeEnv(base, es.Env),
		Cwd:  cwd,
		User: specs.User{UID: sandbox.SandboxUID, GID: sandbox.SandboxGID},
		// Current runsc releases honour these for runsc exec (Debian's
		// 2022 one did not show no_new_privs at all).
		NoNewPrivileges: true,
		Capabilities:    &specs.LinuxCapabilities{},
	}
	if build {
		p.User = specs.User{UID: 0, GID: 0}
		p.Capabilities = &specs.LinuxCapabilities{Bounding: buildCaps, Effective: buildCaps, Permitted: buildCaps}
	}
	return p
}

// writeProcess writes p to a fresh process file (mode 0600) in the bundle
// and returns its path; the caller removes it once runsc has read it.
func (c *container) writeProcess(p *specs.Process) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.bundle, "process-"+randomID()+".json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("write process file: %w", err)
	}
	return path, nil
}

// execCmd prepares "runsc exec --process FILE --internal-pid-file PIDFILE CID".
func (c *container) execCmd(p *specs.Process, pidFile string) (*exec.Cmd, string, error) {
	procFile, err := c.writeProcess(p)
	if err != nil {
		return nil, "", err
	}
	args := c.tier.runscArgs("exec", "--process", procFile, "--internal-pid-file", pidFile, c.cid)
	return exec.Command(c.tier.runsc, args...), procFile, nil
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

// Exec runs a process through the container's exec agent (agent.go), or
// with runsc exec where the agent cannot, streaming its output.
func (c *container) Exec(ctx context.Context, es sandbox.ExecSpec, stdout, stderr io.Writer) (int, error) {
	if err := c.usable(); err != nil {
		return -1, err
	}
	if err := c.waitForwarder(ctx); err != nil {
		return -1, err
	}
	oom0 := c.oomKills()
	code, err := c.agentExec(ctx, c.processSpec(es), es.Stdin, stdout, stderr)
	if errors.Is(err, errNoAgent) {
		return c.runscExec(ctx, es, stdout, stderr)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, sandbox.ErrTimeout)
	case ctx.Err() != nil:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, ctx.Err())
	case err != nil:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, err)
	}
	return c.exitResult(es, code, oom0)
}

// runscExec runs a process via runsc exec.
func (c *container) runscExec(ctx context.Context, es sandbox.ExecSpec, stdout, stderr io.Writer) (int, error) {
	pidFile := filepath.Join(c.bundle, "exec-"+randomID()+".pid")
	defer os.Remove(pidFile)
	cmd, procFile, err := c.execCmd(c.processSpec(es), pidFile)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", es.Cmd, err)
	}
	defer os.Remove(procFile)
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
	if code == 128 {
		// runsc exec's own failure: the sandbox may have died under it.
		if err := c.waitFailure(2 * time.Second); err != nil {
			return code, fmt.Errorf("exec %s: %w", es.Cmd, err)
		}
	}
	return c.exitResult(es, code, oom0)
}

// exitResult explains a non-zero exit by the sandbox's memory or disk
// limit where one was hit.
func (c *container) exitResult(es sandbox.ExecSpec, code int, oom0 int64) (int, error) {
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
// sandbox) and its process group (runsc exec makes it a session and group
// leader), as the process tier does: a fork bomb's children die with it.
// The group is signalled from inside by a helper running as root with
// CAP_KILL alone, since runsc kill reaches one process only; root is not
// held back by the sandbox user's RLIMIT_NPROC, which a fork bomb keeps
// exhausted.
func (c *container) killExec(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.killGroup(ctx, pid)
	_, _ = c.tier.run(ctx, "kill", "--pid", strconv.Itoa(pid), c.cid, "KILL")
}

// killGroupScript signals the group until it is empty (kill answers ESRCH):
// the sentry does not stop a fork that races with the signal, so one pass
// can leave a fork bomb's newest children alive. The bound keeps a group
// that never empties from pinning the helper.
const killGroupScript = `i=0; while [ $i -lt 2000 ] && kill -s KILL -- "-$0" 2>/dev/null; do i=$((i+1)); done`

// killGroup SIGKILLs process group pgid inside the sandbox.
func (c *container) killGroup(ctx context.Context, pgid int) {
	kill := []string{"CAP_KILL"}
	p := &specs.Process{
		Args:         []string{"/bin/sh", "-c", killGroupScript, strconv.Itoa(pgid)},
		Env:          sandbox.MergeEnv(),
		Cwd:          "/",
		User:         specs.User{UID: 0, GID: 0},
		Capabilities: &specs.LinuxCapabilities{Bounding: kill, Effective: kill, Permitted: kill},
	}
	procFile, err := c.writeProcess(p)
	if err != nil {
		return
	}
	defer os.Remove(procFile)
	if _, err := c.tier.run(ctx, "exec", "--process", procFile, c.cid); err != nil {
		c.tier.log.Debug("kill process group in gvisor sandbox", "sandbox", c.id, "pgid", pgid, "err", err)
	}
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

// Start runs a background process through the exec agent, or with runsc
// exec where the agent cannot.
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
	if pid, err := c.agentStart(ctx, c.processSpec(es)); !errors.Is(err, errNoAgent) {
		if err != nil {
			return -1, fmt.Errorf("start %s: %w", es.Cmd, err)
		}
		return pid, nil
	}
	// runsc exec --detach of this runsc release passes its own flags to
	// the command; a runsc exec left running on the host instead serves the
	// process until it exits. runsc does not restore such a process.
	pidFile := filepath.Join(c.bundle, "start-"+randomID()+".pid")
	cmd, procFile, err := c.execCmd(c.processSpec(es), pidFile)
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", es.Cmd, err)
	}
	if err := cmd.Start(); err != nil {
		os.Remove(procFile)
		return -1, fmt.Errorf("start %s: %w", es.Cmd, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
		os.Remove(pidFile)
		os.Remove(procFile)
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
			if err := c.waitFailure(2 * time.Second); err != nil {
				return -1, fmt.Errorf("start %s: %w", es.Cmd, err)
			}
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
		if f := c.Failure(); f != nil {
			return nil, f
		}
		return nil, fmt.Errorf("processes: %w", err)
	}
	ps := parsePS(out)
	if pid := c.agentPID(ctx); pid > 1 {
		ps = slices.DeleteFunc(ps, func(p sandbox.Process) bool { return p.PID == pid })
	}
	return ps, nil
}

// parsePS reads runsc ps output, leaving out pid 1 and the processes of
// root and initUID (pid 1's egress relay, runsc exec helpers; no command
// runs as either): a header line, then UID PID PPID C TTY STIME TIME
// CMD... (older releases lack TTY; the command starts at the header's CMD
// column).
func parsePS(out []byte) []sandbox.Process {
	var res []sandbox.Process
	cmdCol := 6
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if i == 0 {
			if n := len(f) - 1; n >= 3 && f[n] == "CMD" {
				cmdCol = n
			}
			continue
		}
		if len(f) <= cmdCol {
			continue
		}
		pid, err1 := strconv.Atoi(f[1])
		ppid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || pid == 1 || f[0] == "0" || f[0] == strconv.Itoa(initUID) {
			continue
		}
		res = append(res, sandbox.Process{PID: pid, PPID: ppid, Cmdline: f[cmdCol:], State: "R"})
	}
	return res
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
