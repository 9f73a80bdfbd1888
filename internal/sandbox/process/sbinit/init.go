//go:build linux

package sbinit

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Env marks a re-executed binary as a sandbox init.
const Env = "_AGENTCLOUD_SANDBOX_INIT"

// raceEnv is the spawner's RaceEnv, read before it clears its environment.
var raceEnv []string

// RaceEnv is the GORACE setting for a re-executed copy of this binary
// (the spawner, an init): the caller's own, with atexit_sleep_ms=0 unless
// it sets that. A binary built with -race (the test binaries) otherwise
// sleeps a second in every exit, which each sandbox delete and every
// node shutdown waited for; other builds ignore the variable.
func RaceEnv() []string {
	v := os.Getenv("GORACE")
	if !strings.Contains(v, "atexit_sleep_ms") {
		v = strings.TrimSpace(v + " atexit_sleep_ms=0")
	}
	return []string{"GORACE=" + v}
}

// MaybeRun runs the sandbox init, and never returns, in a process started
// with Env=1 (the process tier re-executes /proc/self/exe inside fresh
// namespaces with that marker); in every other process it returns at once.
// This package's init function calls it, which is where a sandbox init
// starts; process.MaybeRunInit calls it too, for test binaries.
func MaybeRun() {
	if os.Getenv(SpawnerEnv) == "1" {
		raceEnv = RaceEnv()
		initFD := os.Getenv(SpawnerInitFDEnv)
		os.Clearenv()
		var err error
		if initFD != "" {
			err = useInitFD(initFD)
		}
		if err == nil {
			err = runSpawner()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sandbox spawner:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv(Env) != "1" {
		return
	}
	os.Clearenv()
	if runtime.GOMAXPROCS(0) != 1 { // set at exec by the spawner: changing it here costs a stop-the-world
		runtime.GOMAXPROCS(1)
	}
	prestartThreads(16)
	if err := runInit(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func init() { MaybeRun() }

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
	ctl  *Conn
	work chan func() // runs on the landlocked, locked OS thread

	mu      sync.Mutex     // guards waiters
	waiters map[int]uint64 // pid -> request id of spawns with Notify

	imageRoot bool              // the root is a writable overlay (an image template)
	filter    []unix.SockFilter // the seccomp filter, built at setup (installSeccomp)
	volumes   []string          // writable volume paths (landlock)
}

func runInit() error {
	ctl, err := NewConn(os.NewFile(3, "ctl"))
	if err != nil {
		return err
	}
	st := &initState{ctl: ctl, waiters: map[int]uint64{}}

	// Phase 1: template setup, while still root in the user namespace.
	m, files, err := ctl.Recv()
	if err != nil {
		return fmt.Errorf("wait for setup: %w", err)
	}
	if m.Op != OpSetup || m.Setup == nil {
		return fmt.Errorf("first message %q, want %q", m.Op, OpSetup)
	}
	st.imageRoot = m.Setup.Layers > 0
	if err := setupRoot(m.Setup, files); err != nil {
		_ = ctl.Send(ReplyErr(m.ID, fmt.Errorf("setup: %w", err)))
		return err
	}
	if err := dropGroups(); err != nil {
		_ = ctl.Send(ReplyErr(m.ID, fmt.Errorf("setup: %w", err)))
		return err
	}
	st.filter = buildFilter()
	if err := ctl.Send(&Message{ID: m.ID, Op: OpReply}); err != nil {
		return err
	}
	if m.Setup.Pool {
		warmThreads()
	}

	// Phase 2: activation (possibly much later: the sandbox sat in a pool).
	m, files, err = ctl.Recv()
	if err != nil {
		if errors.Is(err, ErrEOF) {
			return nil // discarded from the pool
		}
		return fmt.Errorf("wait for activate: %w", err)
	}
	if m.Op != OpActivate || m.Activate == nil {
		return fmt.Errorf("second message %q, want %q", m.Op, OpActivate)
	}
	err = st.activate(m.Activate, files)
	for _, f := range files {
		_ = f.Close()
	}
	if err != nil {
		_ = ctl.Send(ReplyErr(m.ID, fmt.Errorf("activate: %w", err)))
		return err
	}
	if err := ctl.Send(&Message{ID: m.ID, Op: OpReply}); err != nil {
		return err
	}
	return st.serve()
}

// activate mounts the writable dirs, applies rlimits, drops to the sandbox
// user and installs seccomp and landlock. After it returns nothing in the
// sandbox (init included) holds a capability. In build mode (cfg.Build, an
// image template only) the processes it starts run as uid 0 of the user
// namespace instead, with BuildCaps alone (buildcaps.go); init's other
// threads keep the namespace's capabilities but start nothing and, not
// dumpable, cannot be traced or read from inside.
func (st *initState) activate(cfg *ActivateConfig, files []*os.File) error {
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
	if cfg.Build && !st.imageRoot {
		return errors.New("build mode needs an image template (its root is the sandbox's own overlay)")
	}
	if cfg.Build {
		// Build mode keeps uid and gid 0 of the namespace (dropGroups
		// took the gid at setup).
		if err := syscall.Setresgid(0, 0, 0); err != nil {
			return fmt.Errorf("setresgid: %w", err)
		}
	} else if err := syscall.Setresuid(SandboxUID, SandboxUID, SandboxUID); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	// Not dumpable: /proc/1/{environ,mem,root,exe,fd} stay closed to the
	// sandbox user even though init runs under the same uid.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl dumpable: %w", err)
	}
	if err := installSeccomp(st.filter); err != nil {
		return err
	}
	// Landlock applies per thread; spawns run on one locked thread that
	// carries the domain, and children inherit it.
	st.work = make(chan func())
	ready := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with init
		// Build mode: uid 0 of the user namespace, with BuildCaps only.
		if cfg.Build {
			if err := dropToBuildCaps(); err != nil {
				ready <- err
				return
			}
		}
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

// dropGroups makes sure that init has no supplementary groups and the
// sandbox user's gids at setup, while the sandbox waits in the pool.
// The spawner starts init so (startInit's Credential), and then this is a
// check of the calling thread, whose credentials every other thread of
// init copied at its creation. Otherwise it drops both with
// syscall.AllThreadsSyscall, which signals each of init's threads
// (prestartThreads) and waits for it: two such calls were about a tenth of a
// cold prepare's CPU, and three of them (with activation's setresuid)
// most of a pooled sandbox's activation (docs/PERFORMANCE.md). Init keeps
// uid 0 and its capabilities until activation, so it still mounts the
// writable dirs then, and it chowns what it makes for the sandbox to
// SandboxUID:SandboxGID explicitly.
func dropGroups() error {
	groups, err := unix.Getgroups()
	if err != nil {
		return fmt.Errorf("getgroups: %w", err)
	}
	if r, e, s := unix.Getresgid(); len(groups) == 0 && r == SandboxGID && e == SandboxGID && s == SandboxGID {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(SandboxGID, SandboxGID, SandboxGID); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	return nil
}

// warmThreads signals every thread of init once with a harmless
// all-threads call (getpid), so that activation's setresuid, the first
// such call otherwise, does not pay the first delivery's costs (each
// thread's signal stack and handler touched for the first time while the
// caller spins for their answers): 1–1.5 ms of CPU per activation, most
// of what made the pooled burst slower once the spawner gave init its
// gids and setup's two all-threads calls went (docs/PERFORMANCE.md). Only
// for a pool's sandbox, after setup has replied: a cold create would pay
// it right before its activation instead. Best effort: with cgo (a
// fallback init that is the daemon binary) the call is not supported,
// and activation pays as before.
func warmThreads() {
	_, _, _ = syscall.AllThreadsSyscall(syscall.SYS_GETPID, 0, 0, 0)
}

func (st *initState) serve() error {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	go st.reap(sigs)
	for {
		m, files, err := st.ctl.Recv()
		if err != nil {
			if errors.Is(err, ErrEOF) {
				return nil
			}
			return err
		}
		go st.handle(m, files)
	}
}

func (st *initState) handle(m *Message, files []*os.File) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var reply *Message
	switch m.Op {
	case OpSpawn:
		pid, master, err := st.spawn(m, files)
		if err != nil {
			reply = ReplyErr(m.ID, err)
		} else {
			reply = &Message{ID: m.ID, Op: OpReply, PID: pid}
		}
		if master != nil {
			defer master.Close()
			if err == nil {
				_ = st.ctl.Send(reply, master)
				return
			}
		}
	case OpKill:
		target := m.PID
		if m.Group {
			target = -m.PID
		}
		if m.PID <= 1 {
			reply = ReplyErr(m.ID, fmt.Errorf("kill %d: %w", m.PID, unix.EPERM))
		} else if err := unix.Kill(target, unix.Signal(m.Sig)); err != nil {
			reply = ReplyErr(m.ID, fmt.Errorf("kill %d: %w", m.PID, err))
		} else {
			reply = &Message{ID: m.ID, Op: OpReply}
		}
	case OpPs:
		procs, err := listProcs()
		if err != nil {
			reply = ReplyErr(m.ID, err)
		} else {
			reply = &Message{ID: m.ID, Op: OpReply, Procs: procs}
		}
	default:
		reply = ReplyErr(m.ID, fmt.Errorf("unknown op %q", m.Op))
	}
	_ = st.ctl.Send(reply)
}

// spawn starts one process on the landlocked thread. files, when present,
// are stdin, stdout and stderr. With m.TTY the process runs on a new
// terminal instead, as a session leader, and master is the terminal's
// master side for the host.
func (st *initState) spawn(m *Message, files []*os.File) (pid int, master *os.File, err error) {
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
		dir = WorkspaceDir
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
func openTerminal(size WindowSize) (master *os.File, stdio []*os.File, err error) {
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
	if err := CheckWritable(output); err != nil {
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
	reapEach(sigs, func(pid int, ws unix.WaitStatus) {
		st.mu.Lock()
		id, ok := st.waiters[pid]
		delete(st.waiters, pid)
		st.mu.Unlock()
		if ok {
			_ = st.ctl.Send(exitMessage(id, pid, ws))
		}
	})
}

// reapEach waits, after each signal on sigs, for every child that has
// exited and hands it to exited.
func reapEach(sigs <-chan os.Signal, exited func(pid int, ws unix.WaitStatus)) {
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
			exited(pid, ws)
		}
	}
}

// exitMessage is the OpExit event of request id's process pid.
func exitMessage(id uint64, pid int, ws unix.WaitStatus) *Message {
	ev := &Message{ID: id, Op: OpExit, PID: pid}
	switch {
	case ws.Exited():
		ev.Code = ws.ExitStatus()
	case ws.Signaled():
		ev.Signal = int(ws.Signal())
		ev.Code = 128 + ev.Signal
	}
	return ev
}

func lookPath(file string, env []string) (string, error) {
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	var dirs []string
	if pathEnv != "" {
		dirs = strings.Split(pathEnv, ":")
	}
	for _, dir := range dirs {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		if unix.Access(p, unix.X_OK) == nil {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH: %w", file, unix.ENOENT)
}

// listProcs reads the sandbox's /proc, leaving out init itself.
func listProcs() ([]Process, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []Process
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
		p := Process{PID: pid, PPID: ppid, State: fields[0]}
		if cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(cl) > 0 {
			p.Cmdline = strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		} else if lp := strings.IndexByte(s, '('); lp >= 0 {
			p.Cmdline = []string{"[" + s[lp+1:rp] + "]"}
		}
		out = append(out, p)
	}
	return out, nil
}
