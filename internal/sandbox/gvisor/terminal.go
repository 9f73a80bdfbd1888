//go:build linux

package gvisor

// Terminals: the exec agent (agent.go) starts the program on a new
// pseudo-terminal inside the sandbox (the sentry's own devpts), as the
// session leader with the terminal as its controlling tty. On a
// connection of its own, {"op": "pty", args, env, cwd, rows, cols} is
// answered P pid (or F "errno message"); then frames as for a command:
//
//	agent → daemon: O terminal output, X exit code
//	daemon → agent: I input, R rows and cols (two big-endian uint16),
//	                S signal number (to the foreground process group),
//	                K kill the session's process groups (a hang-up)
//
// The connection closing before X kills them too; a memory snapshot
// closes it (runsc checkpoint cuts the sandbox's host socket
// connections), so a terminal open across one ends. gVisor's terminals do
// not tell their foreground process group to a process outside their
// session (TIOCGPGRP on the master is ENOTTY), so S of INT, QUIT or TSTP
// types the line discipline's character for it (VINTR, VQUIT, VSUSP,
// with ISIG on), which signals the foreground group as Ctrl-C would;
// other signals go to the session leader's group. Input the
// program does not read is held up to 1 MiB in the agent, then dropped,
// as a full line discipline drops it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

var _ sandbox.Terminaler = (*container)(nil)

// termBufMax bounds the output held for a reader that does not read; the
// agent (and so the program) then waits.
const termBufMax = 1 << 20

// termMax bounds the terminals open at once in one sandbox: each holds up
// to termBufMax of output in the daemon for a reader that does not read.
const termMax = 16

// Terminal runs a process on a terminal made inside the sandbox by its
// exec agent; see sandbox.Terminaler.
func (c *container) Terminal(ctx context.Context, es sandbox.ExecSpec, size sandbox.WindowSize) (sandbox.Terminal, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if err := size.Check(); err != nil {
		return nil, err
	}
	if err := c.waitForwarder(ctx); err != nil {
		return nil, err
	}
	release := func() {}
	if a := c.agent; a != nil {
		select {
		case a.terms <- struct{}{}:
			release = func() { <-a.terms }
		default:
			return nil, fmt.Errorf("terminal %s: %w (%d)", es.Cmd, sandbox.ErrTerminals, termMax)
		}
	}
	t, err := c.startTerminal(ctx, es, size, release)
	if err != nil {
		release()
		return nil, err
	}
	return t, nil
}

// startTerminal asks the exec agent for es on a terminal of size; the
// terminal calls release when it ends.
func (c *container) startTerminal(ctx context.Context, es sandbox.ExecSpec, size sandbox.WindowSize, release func()) (*terminal, error) {
	p := c.processSpec(es)
	_, conn, err := c.agentSend(ctx, p, agentRequest{Op: "pty", Args: p.Args, Env: p.Env, Cwd: p.Cwd, Rows: size.Rows, Cols: size.Cols})
	if errors.Is(err, errNoAgent) {
		return nil, fmt.Errorf("terminal %s: a gvisor sandbox without an exec agent (no python3 in its image, or a build sandbox): %w", es.Cmd, sandbox.ErrUnsupported)
	}
	if err != nil {
		return nil, fmt.Errorf("terminal %s: %w", es.Cmd, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	// The agent lives in the sandbox, where code can stand in for it:
	// its answer is waited for as long as a port's, not forever.
	_ = conn.SetReadDeadline(time.Now().Add(portDialTimeout))
	r := bufio.NewReader(conn)
	typ, b, err := readFrame(r)
	_ = conn.SetReadDeadline(time.Time{})
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("terminal %s: %w", es.Cmd, ctx.Err())
		}
		return nil, fmt.Errorf("terminal %s: exec agent: no answer", es.Cmd)
	}
	if typ != 'P' {
		conn.Close()
		return nil, fmt.Errorf("terminal %s: %w", es.Cmd, agentFailure(b))
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 1 {
		conn.Close()
		return nil, fmt.Errorf("terminal %s: exec agent: pid %q", es.Cmd, b)
	}
	t := &terminal{c: c, conn: conn, pid: pid, readable: make(chan struct{}, 1), room: make(chan struct{}, 1),
		ended: make(chan struct{}), done: make(chan struct{}), release: release}
	go t.run(r)
	return t, nil
}

// agentFailure is the error of an F frame: "errno message".
func agentFailure(b []byte) error {
	num, msg, _ := strings.Cut(string(b), " ")
	if n, err := strconv.Atoi(num); err == nil && n > 0 {
		return fmt.Errorf("%s: %w", msg, syscall.Errno(n))
	}
	return errors.New(string(b))
}

// readFrame reads one frame of the agent's.
func readFrame(r io.Reader) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > agentFrameMax {
		return 0, nil, fmt.Errorf("exec agent: frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return h[0], b, nil
}

type terminal struct {
	c    *container
	conn net.Conn
	pid  int // inside the sandbox; also the process group and session

	wmu sync.Mutex // serializes frames to the agent

	mu     sync.Mutex // guards out, eof, closed
	out    bytes.Buffer
	eof    bool // no more output comes
	closed bool

	readable chan struct{} // 1-buffered: out grew
	room     chan struct{} // 1-buffered: out shrank
	ended    chan struct{} // closed once eof or closed
	endOnce  sync.Once

	done chan struct{} // closed when the exit (or the agent's loss) is known
	code int
	err  error

	closeOnce sync.Once
	release   func() // gives back the sandbox's terminal slot (termMax)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (t *terminal) end() { t.endOnce.Do(func() { close(t.ended) }) }

// run reads the agent's frames up to the exit code.
func (t *terminal) run(r *bufio.Reader) {
	defer close(t.done)
	defer t.release()
	defer t.conn.Close()
	defer t.end()
	defer func() {
		t.mu.Lock()
		t.eof = true
		t.mu.Unlock()
	}()
	for {
		typ, b, err := readFrame(r)
		if err != nil {
			t.code, t.err = -1, t.lost()
			return
		}
		switch typ {
		case 'O':
			t.mu.Lock()
			for t.out.Len() >= termBufMax && !t.closed {
				t.mu.Unlock()
				select {
				case <-t.room:
				case <-t.ended:
				}
				t.mu.Lock()
			}
			if !t.closed {
				t.out.Write(b)
			}
			t.mu.Unlock()
			notify(t.readable)
		case 'X':
			code, err := strconv.Atoi(string(b))
			if err != nil {
				code, t.err = -1, fmt.Errorf("exec agent: exit code %q", b)
			}
			t.code = code
			return
		}
	}
}

// lost says why the agent's connection ended before the exit code: the
// sandbox closed or died, or a memory snapshot (runsc checkpoint cuts the
// sandbox's host socket connections; the agent then kills the session).
func (t *terminal) lost() error {
	t.c.mu.Lock()
	closed := t.c.closed
	t.c.mu.Unlock()
	if closed {
		return fmt.Errorf("terminal: sandbox %s: %w", t.c.id, sandbox.ErrClosed)
	}
	if err := t.c.waitFailure(3 * time.Second); err != nil {
		return err
	}
	return errors.New("terminal: the connection to the exec agent ended (a memory snapshot ends open terminals)")
}

// Read returns the terminal's output; io.EOF once the process has gone
// and its output is drained, or after Close.
func (t *terminal) Read(p []byte) (int, error) {
	for {
		t.mu.Lock()
		if t.out.Len() > 0 && !t.closed {
			n, _ := t.out.Read(p)
			t.mu.Unlock()
			notify(t.room)
			return n, nil
		}
		if t.eof || t.closed {
			t.mu.Unlock()
			return 0, io.EOF
		}
		t.mu.Unlock()
		select {
		case <-t.readable:
		case <-t.ended:
		}
	}
}

func (t *terminal) send(typ byte, b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	h := [5]byte{typ}
	binary.BigEndian.PutUint32(h[1:], uint32(len(b)))
	_ = t.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := t.conn.Write(append(h[:], b...)); err != nil {
		// Part of a frame may be out: the stream is no longer framed, and
		// what followed would be read as frame headers. End it.
		t.conn.Close()
		return fmt.Errorf("terminal: %w", err)
	}
	return nil
}

// Write types p on the terminal.
func (t *terminal) Write(p []byte) (int, error) {
	select {
	case <-t.done:
		return 0, fmt.Errorf("terminal: the process has exited: %w", io.ErrClosedPipe)
	default:
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), 32<<10)]
		if err := t.send('I', chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (t *terminal) PID() int { return t.pid }

// Resize sets the window size; the foreground job gets SIGWINCH.
func (t *terminal) Resize(size sandbox.WindowSize) error {
	if err := size.Check(); err != nil {
		return err
	}
	var b [4]byte
	binary.BigEndian.PutUint16(b[:2], size.Rows)
	binary.BigEndian.PutUint16(b[2:], size.Cols)
	return t.send('R', b[:])
}

// Signal sends sig to the terminal's foreground process group (the
// session's if the agent cannot tell it).
func (t *terminal) Signal(ctx context.Context, sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok || s <= 0 || s > 64 {
		return fmt.Errorf("signal %v: unsupported signal", sig)
	}
	if err := t.c.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return t.send('S', []byte(strconv.Itoa(int(s))))
}

func (t *terminal) Wait(ctx context.Context) (int, error) {
	select {
	case <-t.done:
		return t.code, t.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Close hangs the terminal up: the agent kills its process group and
// answers the exit code; the connection is closed after 5 s without one.
func (t *terminal) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.out.Reset()
		t.mu.Unlock()
		t.end()
		select {
		case <-t.done:
			return
		default:
		}
		time.AfterFunc(5*time.Second, func() { t.conn.Close() })
		_ = t.send('K', nil)
	})
	return nil
}
