//go:build linux

package process

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// initEnv marks a re-executed binary as a sandbox init.
const initEnv = "_AGENTCLOUD_SANDBOX_INIT"

// MaybeRunInit must be called first thing in main (and in TestMain of any
// test binary that creates process-tier sandboxes). The process tier starts
// each sandbox by re-executing the current binary (/proc/self/exe) inside
// fresh namespaces with a marker in the environment; in that process
// MaybeRunInit runs the sandbox init and never returns. In every other
// process it returns at once.
//
// This package's init function calls it too, and that is where a sandbox
// init normally starts: Go initializes packages in import-path order, each
// after its own imports, so this package comes before most of a large
// binary's other packages (JSON Schema compilers, metrics registries, ...).
// A sandbox init then skips their initialization, which otherwise costs more
// CPU and page faults than everything else a sandbox start does; see
// docs/RATIONALE.md.
func MaybeRunInit() {
	if os.Getenv(initEnv) != "1" {
		return
	}
	os.Clearenv()
	runtime.GOMAXPROCS(1)
	prestartThreads(16)
	if err := runInit(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func init() { MaybeRunInit() }

// prestartThreads makes the Go runtime create n OS threads now, while the
// sandbox's pids budget allows it. A fork bomb inside the sandbox later
// exhausts the pids cgroup, and the runtime aborts if it then needs a new
// thread; threads it already has are parked idle and reused instead.
func prestartThreads(n int) {
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	for range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread() // blocking while locked forces a new M for the P
			ready.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	close(release)
	done.Wait()
}

// initState is the in-sandbox side: pid 1 of the sandbox's pid namespace.
type initState struct {
	ctl  *conn
	work chan func() // runs on the landlocked, locked OS thread

	mu      sync.Mutex     // guards waiters
	waiters map[int]uint64 // pid -> request id of spawns with Notify

	imageRoot bool     // the root is a writable overlay (an image template)
	volumes   []string // writable volume paths (landlock)
}

func runInit() error {
	ctl, err := newConn(os.NewFile(3, "ctl"))
	if err != nil {
		return err
	}
	st := &initState{ctl: ctl, waiters: map[int]uint64{}}

	// Phase 1: template setup, while still root in the user namespace.
	m, files, err := ctl.recv()
	if err != nil {
		return fmt.Errorf("wait for setup: %w", err)
	}
	if m.Op != opSetup || m.Setup == nil {
		return fmt.Errorf("first message %q, want %q", m.Op, opSetup)
	}
	st.imageRoot = m.Setup.Layers > 0
	if err := setupRoot(m.Setup, files); err != nil {
		_ = ctl.send(replyErr(m.ID, fmt.Errorf("setup: %w", err)))
		return err
	}
	if err := ctl.send(&message{ID: m.ID, Op: opReply}); err != nil {
		return err
	}

	// Phase 2: activation (possibly much later: the sandbox sat in a pool).
	m, files, err = ctl.recv()
	if err != nil {
		if errors.Is(err, errEOF) {
			return nil // discarded from the pool
		}
		return fmt.Errorf("wait for activate: %w", err)
	}
	if m.Op != opActivate || m.Activate == nil {
		return fmt.Errorf("second message %q, want %q", m.Op, opActivate)
	}
	err = st.activate(m.Activate, files)
	for _, f := range files {
		_ = f.Close()
	}
	if err != nil {
		_ = ctl.send(replyErr(m.ID, fmt.Errorf("activate: %w", err)))
		return err
	}
	if err := ctl.send(&message{ID: m.ID, Op: opReply}); err != nil {
		return err
	}
	return st.serve()
}

// activate mounts the writable dirs, applies rlimits, drops to the sandbox
// user and installs seccomp and landlock. After it returns nothing in the
// sandbox (init included) holds a capability.
func (st *initState) activate(cfg *activateConfig, files []*os.File) error {
	if err := mountWritable(cfg, files); err != nil {
		return err
	}
	st.volumes = volumePaths(cfg.Volumes)
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if err := setRlimits(cfg); err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(sandbox.SandboxGID, sandbox.SandboxGID, sandbox.SandboxGID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(sandbox.SandboxUID, sandbox.SandboxUID, sandbox.SandboxUID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	// Not dumpable: /proc/1/{environ,mem,root,exe,fd} stay closed to the
	// sandbox user even though init runs under the same uid.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl dumpable: %w", err)
	}
	if err := installSeccomp(); err != nil {
		return err
	}
	// Landlock applies per thread; spawns run on one locked thread that
	// carries the domain, and children inherit it.
	st.work = make(chan func())
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with init
		if err := restrictLandlock(st.imageRoot, st.volumes); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for f := range st.work {
			f()
		}
	}()
	return <-ready
}

func (st *initState) serve() error {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	go st.reap(sigs)
	for {
		m, files, err := st.ctl.recv()
		if err != nil {
			if errors.Is(err, errEOF) {
				return nil
			}
			return err
		}
		go st.handle(m, files)
	}
}

func (st *initState) handle(m *message, files []*os.File) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var reply *message
	switch m.Op {
	case opSpawn:
		pid, master, err := st.spawn(m, files)
		if err != nil {
			reply = replyErr(m.ID, err)
		} else {
			reply = &message{ID: m.ID, Op: opReply, PID: pid}
		}
		if master != nil {
			defer master.Close()
			if err == nil {
				_ = st.ctl.send(reply, master)
				return
			}
		}
	case opKill:
		target := m.PID
		if m.Group {
			target = -m.PID
		}
		if m.PID <= 1 {
			reply = replyErr(m.ID, fmt.Errorf("kill %d: %w", m.PID, unix.EPERM))
		} else if err := unix.Kill(target, unix.Signal(m.Sig)); err != nil {
			reply = replyErr(m.ID, fmt.Errorf("kill %d: %w", m.PID, err))
		} else {
			reply = &message{ID: m.ID, Op: opReply}
		}
	case opPs:
		procs, err := listProcs()
		if err != nil {
			reply = replyErr(m.ID, err)
		} else {
			reply = &message{ID: m.ID, Op: opReply, Procs: procs}
		}
	default:
		reply = replyErr(m.ID, fmt.Errorf("unknown op %q", m.Op))
	}
	_ = st.ctl.send(reply)
}

// spawn starts one process on the landlocked thread. files, when present,
// are stdin, stdout and stderr. With m.TTY the process runs on a new
// terminal instead, as a session leader, and master is the terminal's
// master side for the host.
func (st *initState) spawn(m *message, files []*os.File) (pid int, master *os.File, err error) {
	argv0 := m.Path
	if !strings.Contains(argv0, "/") {
		p, err := lookPath(argv0, m.Env)
		if err != nil {
			return 0, nil, err
		}
		argv0 = p
	}
	dir := m.Dir
	if dir == "" {
		dir = sandbox.WorkspaceDir
	}
	type result struct {
		pid    int
		master *os.File
		err    error
	}
	done := make(chan result, 1)
	st.work <- func() {
		stdio := files
		sys := &syscall.SysProcAttr{Setpgid: true}
		var master *os.File
		if m.TTY != nil {
			var err error
			master, stdio, err = openTerminal(*m.TTY)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer func() {
				for _, f := range stdio {
					f.Close()
				}
			}()
			sys = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		} else if len(stdio) != 3 {
			var err error
			stdio, err = backgroundStdio(m.Output)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer func() {
				for _, f := range stdio {
					f.Close()
				}
			}()
		}
		attr := &syscall.ProcAttr{
			Dir:   dir,
			Env:   m.Env,
			Files: []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd()},
			Sys:   sys,
		}
		// Hold mu across fork so the reaper cannot see the exit before the
		// waiter is registered.
		st.mu.Lock()
		defer st.mu.Unlock()
		pid, err := syscall.ForkExec(argv0, append([]string{m.Path}, m.Argv...), attr)
		if err == nil && m.Notify {
			st.waiters[pid] = m.ID
		}
		if err != nil && master != nil {
			master.Close()
			master = nil
		}
		done <- result{pid, master, err}
	}
	r := <-done
	if r.err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", m.Path, r.err)
	}
	return r.pid, r.master, nil
}

// openTerminal makes a terminal of the given size in the sandbox's devpts
// and returns its master and three handles of its slave side (stdio).
func openTerminal(size sandbox.WindowSize) (master *os.File, stdio []*os.File, err error) {
	mfd, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open terminal: %w", err)
	}
	master = os.NewFile(uintptr(mfd), "ptmx")
	fail := func(what string, err error) (*os.File, []*os.File, error) {
		master.Close()
		for _, f := range stdio {
			f.Close()
		}
		return nil, nil, fmt.Errorf("terminal %s: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock", err)
	}
	if err := unix.IoctlSetWinsize(mfd, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols}); err != nil {
		return fail("size", err)
	}
	for range 3 {
		sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
		if errno != 0 {
			return fail("peer", errno)
		}
		stdio = append(stdio, os.NewFile(sfd, "pts"))
	}
	return master, stdio, nil
}

func backgroundStdio(output string) ([]*os.File, error) {
	in, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	if output == "" {
		out, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			in.Close()
			return nil, err
		}
		return []*os.File{in, out, out}, nil
	}
	if _, _, err := sandbox.ResolvePath(output); err != nil {
		in.Close()
		return nil, err
	}
	fd, err := unix.Open(output, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("open output %s: %w", output, err)
	}
	out := os.NewFile(uintptr(fd), output)
	return []*os.File{in, out, out}, nil
}

// reap collects every child and orphan (init is pid 1 of the namespace) and
// reports the exits the host waits for.
func (st *initState) reap(sigs <-chan os.Signal) {
	for range sigs {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if pid <= 0 || err != nil {
				break
			}
			st.mu.Lock()
			id, ok := st.waiters[pid]
			delete(st.waiters, pid)
			st.mu.Unlock()
			if !ok {
				continue
			}
			ev := &message{ID: id, Op: opExit, PID: pid}
			switch {
			case ws.Exited():
				ev.Code = ws.ExitStatus()
			case ws.Signaled():
				ev.Signal = int(ws.Signal())
				ev.Code = 128 + ev.Signal
			}
			_ = st.ctl.send(ev)
		}
	}
}

func lookPath(file string, env []string) (string, error) {
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if unix.Access(p, unix.X_OK) == nil {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH: %w", file, unix.ENOENT)
}

// listProcs reads the sandbox's /proc, leaving out init itself.
func listProcs() ([]sandbox.Process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []sandbox.Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parens.
		s := string(stat)
		rp := strings.LastIndexByte(s, ')')
		if rp < 0 {
			continue
		}
		fields := strings.Fields(s[rp+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		p := sandbox.Process{PID: pid, PPID: ppid, State: fields[0]}
		if cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(cl) > 0 {
			p.Cmdline = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		} else if lp := strings.IndexByte(s, '('); lp >= 0 {
			p.Cmdline = []string{"[" + s[lp+1:rp] + "]"}
		}
		out = append(out, p)
	}
	return out, nil
}
