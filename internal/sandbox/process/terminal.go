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
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

var _ sandbox.Terminaler = (*box)(nil)

// Terminal runs a process on a terminal made inside the sandbox (init
// opens its devpts, spawns the process as the session leader with the
// slave as its controlling tty, and hands the master back over the
// control socket); see sandbox.Terminaler.
func (b *box) Terminal(ctx context.Context, es sandbox.ExecSpec, size sandbox.WindowSize) (sandbox.Terminal, error) {
	if err := b.usable(); err != nil {
		return nil, err
	}
	if err := size.Check(); err != nil {
		return nil, err
	}
	tty := sbinit.WindowSize(size)
	id := b.nextID.Add(1)
	exitCh := make(chan *message, 1)
	b.mu.Lock()
	b.exits[id] = exitCh
	b.mu.Unlock()
	reply, err := b.call(ctx, &message{
		ID: id, Op: opSpawn, Path: es.Cmd, Argv: es.Args,
		Env: mergeExecEnv(b.baseEnv(), es.Env), Dir: es.Cwd, Notify: true, TTY: &tty,
	})
	if err == nil && len(reply.Files) != 1 {
		err = errors.New("init answered without a terminal")
	}
	if err != nil {
		b.mu.Lock()
		delete(b.exits, id)
		b.mu.Unlock()
		if reply != nil {
			closeAll(reply.Files)
		}
		return nil, fmt.Errorf("terminal %s: %w", es.Cmd, err)
	}
	master, err := nonblocking(reply.Files[0])
	if err != nil {
		b.killGroup(reply.PID)
		return nil, fmt.Errorf("terminal %s: %w", es.Cmd, err)
	}
	t := &terminal{b: b, pid: reply.PID, master: master, exitCh: exitCh, done: make(chan struct{})}
	go t.wait()
	return t, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// nonblocking returns f as a pollable file, so that Close interrupts a
// Read in another goroutine (a received fd starts out blocking).
func nonblocking(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "terminal"), nil
}

type terminal struct {
	b      *box
	pid    int // inside the sandbox; also the process group and session
	master *os.File
	exitCh chan *message

	done chan struct{} // closed when the exit (or the loss of init) is known
	code int
	err  error

	closeOnce sync.Once
}

// Read returns the terminal's output; io.EOF once the process has gone
// (the master reads EIO when no slave is left open).
func (t *terminal) Read(p []byte) (int, error) {
	n, err := t.master.Read(p)
	if errors.Is(err, syscall.EIO) || errors.Is(err, os.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

func (t *terminal) PID() int { return t.pid }

func (t *terminal) Write(p []byte) (int, error) { return t.master.Write(p) }

func (t *terminal) Resize(size sandbox.WindowSize) error {
	if err := size.Check(); err != nil {
		return err
	}
	conn, err := t.master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := conn.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
	}); err != nil {
		return err
	}
	return ierr
}

func (t *terminal) Signal(ctx context.Context, sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v: unsupported signal type", sig)
	}
	if err := t.b.usable(); err != nil {
		return err
	}
	pgid := t.pid
	if fg, ok := t.foreground(); ok {
		pgid = fg
	}
	if _, err := t.b.call(ctx, &message{Op: opKill, PID: pgid, Sig: int(s), Group: true}); err != nil {
		return fmt.Errorf("signal terminal: %w", err)
	}
	return nil
}

// foreground returns the terminal's foreground process group as a pid
// inside the sandbox (a shell runs each job in a group of its own). The
// terminal answers it in the host's pid namespace; the group leader's
// NSpid line translates it.
func (t *terminal) foreground() (int, bool) {
	conn, err := t.master.SyscallConn()
	if err != nil {
		return 0, false
	}
	host, ierr := 0, error(nil)
	if err := conn.Control(func(fd uintptr) { host, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPGRP) }); err != nil || ierr != nil || host <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(host) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 { // not in a child pid namespace: not ours
				return 0, false
			}
			inner, err := strconv.Atoi(f[len(f)-1])
			return inner, err == nil && inner > 1
		}
	}
	return 0, false
}

func (t *terminal) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
		return t.code, t.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (t *terminal) wait() {
	defer close(t.done)
	ex, ok := <-t.exitCh
	if !ok {
		t.code, t.err = -1, t.b.deadErr()
		return
	}
	t.code = ex.Code
}

// Close kills the terminal's process group (a hang-up, from the shell's
// point of view) and releases the master.
func (t *terminal) Close() error {
	t.closeOnce.Do(func() {
		select {
		case <-t.done:
		default:
			t.b.killGroup(t.pid)
		}
		t.master.Close()
	})
	return nil
}
