//go:build linux

package sbinit

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SpawnerEnv marks a re-executed binary as the process tier's spawner: a
// small long-lived process that starts sandbox inits for the daemon, so
// that the daemon's large Go process is never forked per sandbox. (Go forks,
// rather than vforks, a child that gets a new user namespace; a fork of the
// daemon copied its page tables and stalled its threads on every create.)
//
// Protocol, on fd 3 (a SOCK_SEQPACKET socket): the host sends OpStart with
// UIDBase and two fds, the init's end of its control socket and the write
// end of a pipe for its stderr; the spawner replies with the init's PID,
// and later sends OpExit with that PID and its exit Code or Signal. The
// reply always comes before the exit of the same PID. When the host side
// closes, the spawner exits; the inits it started live on until their own
// control sockets close.
const SpawnerEnv = "_AGENTCLOUD_SANDBOX_SPAWNER"

// SpawnerInitFDEnv, when set in the spawner's environment, names its fd
// (from 4 up) that holds the executable to start as each sandbox init (a
// sealed memfd of the small init, process/initexe.go); unset, the spawner
// re-executes its own binary.
const SpawnerInitFDEnv = "_AGENTCLOUD_SANDBOX_INIT_FD"

// initPath is what the spawner executes as a sandbox init.
var initPath = "/proc/self/exe"

// useInitFD makes the spawner start inits from fd v (SpawnerInitFDEnv). The
// fd is first moved to 64 or above, out of the way of the fds a start
// places at 0..3, and kept close-on-exec: execve opens
// /proc/self/fd/N before it closes such fds, and no init inherits it.
func useInitFD(v string) error {
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 4 {
		return fmt.Errorf("spawner: bad %s %q", SpawnerInitFDEnv, v)
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 64)
	if err != nil {
		return fmt.Errorf("spawner: init fd: %w", err)
	}
	_ = unix.Close(fd)
	initPath = "/proc/self/fd/" + strconv.Itoa(high)
	return nil
}

// Init's namespaces and uid range (the host's view is in the reply).
const (
	cloneFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
		syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	// UIDRange is the number of host uids (and gids) each sandbox maps.
	UIDRange = 65536
)

type spawner struct {
	ctl *Conn
	mu  sync.Mutex // held from a start until its reply is sent, and by each exit report
	ids map[int]uint64
}

func runSpawner() error {
	runtime.GOMAXPROCS(1)
	ctl, err := NewConn(os.NewFile(3, "ctl"))
	if err != nil {
		return err
	}
	sp := &spawner{ctl: ctl, ids: map[int]uint64{}}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD)
	go sp.reap(sigs)
	for {
		m, files, err := ctl.Recv()
		if errors.Is(err, ErrEOF) {
			return nil
		}
		if err != nil {
			return err
		}
		sp.handle(m, files)
		for _, f := range files {
			f.Close()
		}
	}
}

func (sp *spawner) handle(m *Message, files []*os.File) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if m.Op != OpStart {
		_ = sp.ctl.Send(ReplyErr(m.ID, fmt.Errorf("spawner: unknown op %q", m.Op)))
		return
	}
	pid, err := startInit(m.UIDBase, files)
	if err != nil {
		_ = sp.ctl.Send(ReplyErr(m.ID, err))
		return
	}
	sp.ids[pid] = m.ID
	_ = sp.ctl.Send(&Message{ID: m.ID, Op: OpReply, PID: pid})
}

// startInit starts initPath as a sandbox init in fresh namespaces, as
// root of its user namespace (mapped to host uids base..base+UIDRange-1),
// with ctl as its fd 3 and stderr as its fd 2.
func startInit(base int, files []*os.File) (int, error) {
	if len(files) != 2 {
		return 0, fmt.Errorf("spawner: start wants 2 fds (control socket, stderr), got %d", len(files))
	}
	if base <= 0 || base > 1<<31-UIDRange {
		return 0, fmt.Errorf("spawner: uid base %d out of range", base)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	return syscall.ForkExec(initPath, []string{"agentcloud-sandbox-init"}, &syscall.ProcAttr{
		Env:   append([]string{Env + "=1", "GOMAXPROCS=1"}, raceEnv...),
		Files: []uintptr{null.Fd(), null.Fd(), files[1].Fd(), files[0].Fd()},
		Sys: &syscall.SysProcAttr{
			Cloneflags:                 cloneFlags,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: UIDRange}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: base, Size: UIDRange}},
			GidMappingsEnableSetgroups: true,
			// Root of the new user namespace before exec, so init starts
			// with the namespace's full capability set; with no
			// supplementary groups and the sandbox user's gids already
			// (set here, in the single-threaded child, rather than by
			// init's setup for every one of its threads: dropGroups).
			Credential: &syscall.Credential{Uid: 0, Gid: SandboxGID},
			Setsid:     true,
		},
	})
}

// reap collects every exited init and reports those the host started.
func (sp *spawner) reap(sigs <-chan os.Signal) {
	reapEach(sigs, func(pid int, ws unix.WaitStatus) {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if id, ok := sp.ids[pid]; ok {
			delete(sp.ids, pid)
			_ = sp.ctl.Send(exitMessage(id, pid, ws))
		}
	})
}
