//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

// spawner is the host side of the tier's long-lived spawner process
// (sbinit.SpawnerEnv): it starts sandbox inits so that this large process
// is never forked per sandbox. It is started on first use and again after
// it dies; every init it started is then reported as exited with an
// unknown status (their control sockets tell the boxes what happened).
type spawner struct {
	log    *slog.Logger
	nextID atomic.Uint64

	mu     sync.Mutex // guards the fields below
	proc   *spawnerProc
	closed bool
	// initExe is the small init in a sealed memfd (initexe.go), made
	// once; nil when this build carries none (then the spawner
	// re-executes this binary as each init).
	initExe     *os.File
	initExeDone bool
}

// spawnerProc is one running spawner process.
type spawnerProc struct {
	cmd  *exec.Cmd
	ctl  *conn
	done chan struct{} // closed when its control connection has ended

	mu    sync.Mutex // guards calls and inits
	calls map[uint64]chan startResult
	inits map[int]*initProc
	dead  bool
}

// initProc is a sandbox init started by the spawner.
type initProc struct {
	pid  int
	done chan struct{} // closed once it has exited (or the spawner died)
	// status is its wait status once done; known is false when the
	// spawner died before reporting it.
	status syscall.WaitStatus
	known  bool
}

type startResult struct {
	proc *initProc
	err  error
}

// start asks the spawner for an init mapped to host uids from base, with
// ctl as its control socket and stderr as its fd 2.
func (s *spawner) start(ctx context.Context, base int, ctl, stderr *os.File) (*initProc, error) {
	sp, err := s.running()
	if err != nil {
		return nil, err
	}
	id := s.nextID.Add(1)
	ch := make(chan startResult, 1)
	sp.mu.Lock()
	if sp.dead {
		sp.mu.Unlock()
		return nil, errors.New("sandbox spawner exited")
	}
	sp.calls[id] = ch
	sp.mu.Unlock()
	if err := sp.ctl.Send(&message{ID: id, Op: sbinit.OpStart, UIDBase: base}, ctl, stderr); err != nil {
		sp.mu.Lock()
		delete(sp.calls, id)
		sp.mu.Unlock()
		return nil, fmt.Errorf("sandbox spawner: %w", err)
	}
	select {
	case r := <-ch:
		return r.proc, r.err
	case <-ctx.Done():
		// The reply may still come: its init then finds its control
		// socket closed by the caller and exits.
		return nil, ctx.Err()
	}
}

// running returns the spawner process, starting one if there is none.
func (s *spawner) running() (*spawnerProc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("sandbox spawner: closed")
	}
	if s.proc != nil {
		select {
		case <-s.proc.done:
		default:
			return s.proc, nil
		}
	}
	host, child, err := socketpair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	cmd := exec.Command("/proc/self/exe")
	if s.initExeFile() != nil {
		// The small init is a spawner too (package sbinit alone), and a
		// fork of it costs less than a fork of this binary: the spawner
		// forks once per sandbox (a copy of its page tables, copy-on-write
		// faults on both sides, the copy torn down again at exec).
		// Executed as the fd it gets below, like the inits it starts.
		cmd = exec.Command("/proc/self/fd/4")
	}
	cmd.Args = []string{"agentcloud-sandbox-spawner"}
	cmd.Env = append([]string{sbinit.SpawnerEnv + "=1", "GOMAXPROCS=1"}, sbinit.RaceEnv()...)
	cmd.ExtraFiles = []*os.File{child}
	if f := s.initExeFile(); f != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, f) // fd 4
		cmd.Env = append(cmd.Env, sbinit.SpawnerInitFDEnv+"=4")
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		host.Close()
		return nil, fmt.Errorf("start sandbox spawner: %w", err)
	}
	ctl, err := newConn(host)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	sp := &spawnerProc{cmd: cmd, ctl: ctl, done: make(chan struct{}),
		calls: map[uint64]chan startResult{}, inits: map[int]*initProc{}}
	go sp.readLoop(s.log)
	s.proc = sp
	return sp, nil
}

// initExeFile returns the sealed memfd of the small init, made on first
// use, or nil (logged once) when there is none. Called with s.mu held.
func (s *spawner) initExeFile() *os.File {
	if !s.initExeDone {
		s.initExeDone = true
		f, err := initExeMemfd()
		switch {
		case errors.Is(err, errNoInitExe):
			s.log.Info("sandbox inits re-execute the daemon binary", "err", err)
		case err != nil: // a stale or foreign init, or no memfd: slower, never weaker
			s.log.Warn("sandbox inits re-execute the daemon binary", "err", err)
		}
		s.initExe = f
	}
	return s.initExe
}

// readLoop delivers replies and exits; when the connection ends it fails
// the calls in flight and marks every init it knows as exited.
func (sp *spawnerProc) readLoop(log *slog.Logger) {
	for {
		m, files, err := sp.ctl.Recv()
		closeAll(files)
		if err != nil {
			if !errors.Is(err, errEOF) && !errors.Is(err, os.ErrClosed) {
				log.Warn("sandbox spawner connection", "err", err)
			}
			break
		}
		sp.mu.Lock()
		switch m.Op {
		case opReply:
			ch := sp.calls[m.ID]
			delete(sp.calls, m.ID)
			var r startResult
			if r.err = errFromReply(m); r.err == nil {
				// Registered here, before the next message (its exit,
				// perhaps) is read.
				r.proc = &initProc{pid: m.PID, done: make(chan struct{})}
				sp.inits[m.PID] = r.proc
			}
			if ch != nil {
				ch <- r
			}
		case opExit:
			if p := sp.inits[m.PID]; p != nil {
				delete(sp.inits, m.PID)
				p.known = true
				if m.Signal != 0 {
					p.status = syscall.WaitStatus(m.Signal & 0x7f)
				} else {
					p.status = syscall.WaitStatus((m.Code & 0xff) << 8)
				}
				close(p.done)
			}
		}
		sp.mu.Unlock()
	}
	sp.mu.Lock()
	sp.dead = true
	for id, ch := range sp.calls {
		ch <- startResult{err: errors.New("sandbox spawner exited")}
		delete(sp.calls, id)
	}
	for pid, p := range sp.inits {
		delete(sp.inits, pid)
		close(p.done)
	}
	sp.mu.Unlock()
	_ = sp.cmd.Wait()
	close(sp.done)
}

// close stops the spawner (the inits it started are not affected).
func (s *spawner) close() {
	s.mu.Lock()
	s.closed = true
	sp, exe := s.proc, s.initExe
	s.initExe = nil
	s.mu.Unlock()
	if sp != nil {
		sp.ctl.Close()
		<-sp.done
	}
	if exe != nil {
		exe.Close()
	}
}
