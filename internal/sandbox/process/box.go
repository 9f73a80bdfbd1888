//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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

// box is the host side of one sandbox: first a sandbox.Prepared, then,
// after Activate, a sandbox.Sandbox.
type box struct {
	hostfs.Files // file operations on b.fs, through b.fsys
	tier         *Tier
	proc         *initProc // the init, as the spawner started it
	pid          int       // host pid of the sandbox init
	cg           *cgroupSet
	ctl          *conn
	hostUID      int
	hostGID      int
	stderr       *tailBuffer
	stderrDone   chan struct{} // closed once init's stderr has been read to its end
	done         chan struct{} // closed when init has exited and been reaped
	template     string
	rwDir        string // an image template's overlay upper/work (host side)

	// set once by Activate (spec and env also by AddEnv, under mu)
	id   string
	spec sandbox.Spec
	fs   *hostfs.FS
	env  []string

	nextID atomic.Uint64

	mu     sync.Mutex // guards calls, exits, closed, paused, dead, reason
	calls  map[uint64]chan *message
	exits  map[uint64]chan *message
	closed bool
	paused bool
	dead   error  // why the control connection ended
	reason string // why init died, once known (deathReason)
}

var (
	_ sandbox.Sandbox       = (*box)(nil)
	_ sandbox.Prepared      = (*box)(nil)
	_ sandbox.UpperHolder   = (*box)(nil)
	_ sandbox.UpperPreparer = (*Tier)(nil)
)

func (b *box) Template() string { return b.template }

// Activate applies the spec and locks the sandbox down.
func (b *box) Activate(ctx context.Context, id string, spec sandbox.Spec) (sandbox.Sandbox, error) {
	spec.Tier = sandbox.TierProcess
	spec.Template = b.template
	spec.Limits = spec.Limits.WithDefaults()
	b.id, b.spec = id, spec
	defer b.tier.netns.busy()()
	if err := b.cg.setLimits(spec.Limits); err != nil {
		b.destroy()
		return nil, fmt.Errorf("activate sandbox %s: %w", id, err)
	}
	ws, err := b.workspaceTree(spec.HostWorkspace)
	if err != nil {
		b.destroy()
		return nil, fmt.Errorf("activate sandbox %s: %w", id, err)
	}
	vols, vfiles, err := b.volumeTrees(spec.Volumes)
	if err != nil {
		for _, f := range ws {
			_ = f.Close()
		}
		b.destroy()
		return nil, fmt.Errorf("activate sandbox %s: %w", id, err)
	}
	ws = append(ws, vfiles...)
	_, err = b.call(ctx, &message{Op: opActivate, Activate: &activateConfig{
		Hostname: "sandbox", HostWorkspace: len(ws) > len(vfiles),
		DiskMB:  spec.Limits.DiskMB,
		Pids:    spec.Limits.Pids,
		Volumes: vols,
		Build:   spec.Build,
	}}, ws...)
	for _, f := range ws {
		_ = f.Close()
	}
	if err != nil {
		b.destroy()
		return nil, fmt.Errorf("activate sandbox %s: %w%s", id, err, b.stderrTail())
	}
	b.fs, err = hostfs.Open("/proc/"+strconv.Itoa(b.pid)+"/root", b.hostUID, b.hostGID)
	if err != nil {
		b.destroy()
		return nil, fmt.Errorf("activate sandbox %s: %w", id, err)
	}
	b.env = sandbox.MergeEnv(spec.Env)
	return b, nil
}

// AddEnv adds variables to every later exec (used by the network hook).
func (b *box) AddEnv(env map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	merged := make(map[string]string, len(b.spec.Env)+len(env))
	for k, v := range b.spec.Env {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	b.spec.Env = merged
	b.env = sandbox.MergeEnv(merged)
}

func (b *box) baseEnv() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.env
}

// Discard frees a sandbox that was never activated.
func (b *box) Discard() error { return b.Close() }

func (b *box) ID() string   { return b.id }
func (b *box) Tier() string { return sandbox.TierProcess }
func (b *box) Spec() sandbox.Spec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.spec
}

func (b *box) stderrTail() string {
	select { // init is gone: the rest of its stderr is on its way
	case <-b.done:
		select {
		case <-b.stderrDone:
		case <-time.After(time.Second):
		}
	default:
	}
	if s := b.stderr.String(); s != "" {
		return " (init: " + s + ")"
	}
	return ""
}

// readLoop dispatches init's messages to waiting calls and execs.
func (b *box) readLoop() {
	for {
		m, files, err := b.ctl.Recv()
		if err != nil {
			b.mu.Lock()
			b.dead = fmt.Errorf("%w: %v%s", errInitDied, err, b.stderrTail())
			for id, ch := range b.calls {
				close(ch)
				delete(b.calls, id)
			}
			for id, ch := range b.exits {
				close(ch)
				delete(b.exits, id)
			}
			b.mu.Unlock()
			return
		}
		b.mu.Lock()
		var ch chan *message
		switch m.Op {
		case opReply:
			ch = b.calls[m.ID]
			delete(b.calls, m.ID)
		case opExit:
			ch = b.exits[m.ID]
			delete(b.exits, m.ID)
		}
		b.mu.Unlock()
		if ch != nil && m.Op == opReply {
			m.Files, files = files, nil // the caller owns them now
		}
		for _, f := range files {
			f.Close()
		}
		if ch != nil {
			ch <- m
		}
	}
}

// usable returns an error if the sandbox cannot take requests.
func (b *box) usable() error {
	b.mu.Lock()
	closed, dead, paused := b.closed, b.dead != nil, b.paused
	b.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("sandbox %s: %w", b.id, sandbox.ErrClosed)
	case dead:
		return b.Failure()
	case paused:
		return fmt.Errorf("sandbox %s: %w", b.id, sandbox.ErrPaused)
	}
	return nil
}

// Failure implements sandbox.Sandbox: once init has died (the control
// connection ended without Close), every operation fails with why.
func (b *box) Failure() error {
	b.mu.Lock()
	closed, dead := b.closed, b.dead != nil
	b.mu.Unlock()
	if closed || !dead {
		return nil
	}
	return &sandbox.FailedError{ID: b.id, Reason: b.deathReason()}
}

// deathReason says why init died: killed at the memory limit (the memory
// cgroup counted an OOM kill), killed by a signal, or exited. Init's exit
// status arrives with the end of the control connection, give or take a
// moment; the reason is worked out once.
func (b *box) deathReason() string {
	b.mu.Lock()
	r := b.reason
	b.mu.Unlock()
	if r != "" {
		return r
	}
	select {
	case <-b.done:
	case <-time.After(2 * time.Second):
	}
	r = "the sandbox's init exited"
	select {
	case <-b.done:
		if !b.proc.known {
			break
		}
		oom, _ := b.cg.counters()
		ws := b.proc.status
		b.mu.Lock()
		mem := b.spec.Limits.MemoryMB
		b.mu.Unlock()
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL && oom > 0:
			r = fmt.Sprintf("out of memory: the kernel killed the sandbox's init at the memory limit "+
				"(%d MiB for processes, plus the files in /workspace, /tmp and /dev/shm)", mem)
		case ws.Signaled():
			r = fmt.Sprintf("the sandbox's init was killed by signal %s", unix.SignalName(ws.Signal()))
		default:
			r = fmt.Sprintf("the sandbox's init exited with status %d%s", ws.ExitStatus(), b.stderrTail())
		}
	default:
	}
	b.mu.Lock()
	first := b.reason == ""
	if first {
		b.reason = r
	}
	r = b.reason
	b.mu.Unlock()
	if first {
		b.tier.log.Warn("sandbox failed", "sandbox", b.id, "reason", r)
	}
	return r
}

// call sends a request and waits for its reply. If m.ID is zero a new id is
// assigned.
func (b *box) call(ctx context.Context, m *message, files ...*os.File) (*message, error) {
	if m.ID == 0 {
		m.ID = b.nextID.Add(1)
	}
	ch := make(chan *message, 1)
	b.mu.Lock()
	if b.dead != nil {
		b.mu.Unlock()
		return nil, b.deadErr()
	}
	b.calls[m.ID] = ch
	b.mu.Unlock()
	if err := b.ctl.Send(m, files...); err != nil {
		b.mu.Lock()
		delete(b.calls, m.ID)
		b.mu.Unlock()
		select {
		case <-b.done: // init is gone: say why rather than "broken pipe"
			return nil, b.deadErr()
		default:
		}
		return nil, fmt.Errorf("send %s: %w", m.Op, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, b.deadErr()
		}
		return r, errFromReply(r)
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.calls, m.ID)
		b.mu.Unlock()
		select { // a reply already on its way: close the fds it carries
		case r, ok := <-ch:
			if ok {
				closeAll(r.Files)
			}
		default:
		}
		return nil, ctx.Err()
	}
}

// deadErr is the error of a call that lost its answer: the sandbox was
// closed, or init died (a *sandbox.FailedError once activated).
func (b *box) deadErr() error {
	b.mu.Lock()
	closed, dead, activated := b.closed, b.dead, b.fs != nil
	b.mu.Unlock()
	switch {
	case closed:
		return fmt.Errorf("sandbox %s: %w", b.id, sandbox.ErrClosed)
	case activated:
		return &sandbox.FailedError{ID: b.id, Reason: b.deathReason()}
	case dead != nil:
		return dead
	}
	return errInitDied
}

// Exec runs one process to completion; see sandbox.Sandbox.
func (b *box) Exec(ctx context.Context, es sandbox.ExecSpec, stdout, stderr io.Writer) (int, error) {
	if err := b.usable(); err != nil {
		return -1, err
	}
	defer b.tier.netns.busy()()
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return -1, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return -1, err
	}
	// Owned by the sandbox user, so /dev/stdout (a reopen through
	// /proc/self/fd) works inside.
	for _, f := range []*os.File{inR, outW, errW} {
		_ = unix.Fchown(int(f.Fd()), b.hostUID, b.hostGID)
	}
	id := b.nextID.Add(1)
	exitCh := make(chan *message, 1)
	b.mu.Lock()
	b.exits[id] = exitCh
	b.mu.Unlock()
	oom0, pids0 := b.cg.counters()

	reply, err := b.call(ctx, &message{
		ID: id, Op: opSpawn, Path: es.Cmd, Argv: es.Args,
		Env: mergeExecEnv(b.baseEnv(), es.Env), Dir: es.Cwd, Notify: true,
	}, inR, outW, errW)
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		b.mu.Lock()
		delete(b.exits, id)
		b.mu.Unlock()
		inW.Close()
		outR.Close()
		errR.Close()
		return -1, fmt.Errorf("exec %s: %w", es.Cmd, err)
	}
	pid := reply.PID

	var wmu sync.Mutex // stdout and stderr may be the same writer
	var copies sync.WaitGroup
	copyOut := func(w io.Writer, r *os.File) {
		defer copies.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				wmu.Lock()
				_, werr := w.Write(buf[:n])
				wmu.Unlock()
				if werr != nil {
					io.Copy(io.Discard, r)
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	copies.Add(2)
	go copyOut(stdout, outR)
	go copyOut(stderr, errR)
	go func() {
		if es.Stdin != nil {
			_, _ = io.Copy(inW, es.Stdin)
		}
		inW.Close()
	}()

	var ex *message
	var ctxErr error
	select {
	case ex = <-exitCh:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		b.killGroup(pid)
		select {
		case ex = <-exitCh:
		case <-time.After(5 * time.Second):
		}
	}
	// Output ends when every holder of the pipes is gone; a background
	// child that kept them gets a short grace, then is cut off.
	copied := make(chan struct{})
	go func() { copies.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(250 * time.Millisecond):
		outR.Close()
		errR.Close()
		<-copied
	}
	outR.Close()
	errR.Close()

	code := -1
	if ex != nil {
		code = ex.Code
	}
	switch {
	case ctxErr == context.DeadlineExceeded:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, sandbox.ErrTimeout)
	case ctxErr != nil:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, ctxErr)
	case ex == nil:
		return code, fmt.Errorf("exec %s: %w", es.Cmd, b.deadErr())
	}
	if err := b.limitErr(code, oom0, pids0); err != nil {
		return code, fmt.Errorf("exec %s: %w", es.Cmd, err)
	}
	return code, nil
}

// limitErr attributes a failed exec to a resource limit, if one was hit
// while it ran.
func (b *box) limitErr(code int, oom0, pids0 int64) error {
	if code == 0 {
		return nil
	}
	oom1, pids1 := b.cg.counters()
	switch {
	case oom1 > oom0:
		return sandbox.ErrMemoryLimit
	case pids1 > pids0:
		return sandbox.ErrPidsLimit
	}
	var full []string
	for _, root := range []string{sandbox.WorkspaceDir, sandbox.TmpDir} {
		if free, err := b.fs.FreeBytes(root); err == nil && free < 64<<10 {
			full = append(full, root)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("%w (%s full)", sandbox.ErrDiskLimit, strings.Join(full, " and "))
	}
	return nil
}

func (b *box) killGroup(pid int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = b.call(ctx, &message{Op: opKill, PID: pid, Sig: int(unix.SIGKILL), Group: true})
	_, _ = b.call(ctx, &message{Op: opKill, PID: pid, Sig: int(unix.SIGKILL)})
}

func mergeExecEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	m := make(map[string]string, len(base))
	for _, kv := range base {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				m[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	return sandbox.MergeEnv(m, extra)
}

// Start runs a background process.
func (b *box) Start(ctx context.Context, es sandbox.ExecSpec) (int, error) {
	if err := b.usable(); err != nil {
		return -1, err
	}
	r, err := b.call(ctx, &message{
		Op: opSpawn, Path: es.Cmd, Argv: es.Args,
		Env: mergeExecEnv(b.baseEnv(), es.Env), Dir: es.Cwd, Output: es.OutputFile,
	})
	if err != nil {
		return -1, fmt.Errorf("start %s: %w", es.Cmd, err)
	}
	return r.PID, nil
}

// Processes lists the sandbox's processes (init excluded).
func (b *box) Processes(ctx context.Context) ([]sandbox.Process, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	r, err := b.call(ctx, &message{Op: opPs})
	if err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	out := make([]sandbox.Process, len(r.Procs))
	for i, p := range r.Procs {
		out[i] = sandbox.Process(p)
	}
	return out, nil
}

// Signal signals one process inside the sandbox.
func (b *box) Signal(ctx context.Context, pid int, sig os.Signal) error {
	if err := b.usable(); err != nil {
		return err
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v: unsupported signal type", sig)
	}
	if _, err := b.call(ctx, &message{Op: opKill, PID: pid, Sig: int(s)}); err != nil {
		return fmt.Errorf("signal %d: %w", pid, err)
	}
	return nil
}

func (b *box) fsys() (*hostfs.FS, error) {
	b.mu.Lock()
	closed, dead, fs := b.closed, b.dead != nil, b.fs
	b.mu.Unlock()
	if closed || fs == nil {
		return nil, fmt.Errorf("sandbox %s: %w", b.id, sandbox.ErrClosed)
	}
	if dead {
		return nil, b.Failure()
	}
	return fs, nil
}

// Pause freezes every process of the sandbox (init included).
func (b *box) Pause(ctx context.Context) error {
	if err := b.usable(); err != nil {
		return err
	}
	if err := b.cg.freeze(ctx, true); err != nil {
		_ = b.cg.freeze(context.Background(), false)
		return fmt.Errorf("pause %s: %w", b.id, err)
	}
	b.mu.Lock()
	b.paused = true
	b.mu.Unlock()
	return nil
}

// Resume thaws a paused sandbox.
func (b *box) Resume(ctx context.Context) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("sandbox %s: %w", b.id, sandbox.ErrClosed)
	}
	if err := b.cg.freeze(ctx, false); err != nil {
		return fmt.Errorf("resume %s: %w", b.id, err)
	}
	b.mu.Lock()
	b.paused = false
	b.mu.Unlock()
	return nil
}

// NetNSPath returns /proc/PID/ns/net of the sandbox init.
func (b *box) NetNSPath() (string, error) {
	if err := b.usable(); err != nil && !errors.Is(err, sandbox.ErrPaused) {
		return "", err
	}
	return "/proc/" + strconv.Itoa(b.pid) + "/ns/net", nil
}

// Close kills every process and frees the sandbox.
func (b *box) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.destroy()
	return nil
}

// destroy kills init (which takes the whole pid namespace with it), kills
// anything left in the cgroups, waits for init to be reaped and hands the
// cgroups to background removal.
func (b *box) destroy() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	select {
	case <-b.done: // init is gone (its pid may be another process's now)
	default:
		b.tier.netns.hold(b.pid)
	}
	b.kill()
	if b.ctl != nil {
		b.ctl.Close()
	}
	if b.fs != nil {
		b.fs.Close()
	}
	b.tier.release(b.cg)
	b.removeRW()
}

func (b *box) kill() {
	_ = unix.Kill(b.pid, unix.SIGKILL)
	if b.cg != nil {
		// Frozen tasks cannot die; thaw after signalling.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.cg.freeze(ctx, false)
		cancel()
	}
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		b.tier.log.Warn("sandbox init did not exit", "pid", b.pid, "sandbox", b.id)
	}
}
