//go:build linux

package gvisor

// The exec agent: one long-lived process in each container (agentPy) runs
// the commands of Exec and Start, so a command costs a message on a Unix
// socket instead of a runsc exec (a Go program that loads the container's
// state, joins its namespaces and asks the sandbox kernel to start the
// process). The daemon listens on exec.sock in the container's
// /run/agentcloud directory before the container starts; the agent, a
// child of pid 1 (initpy.go), connects to it through runsc's
// --host-uds=open and keeps one idle connection there.
//
// Since the agent and the commands it starts are in pid 1's tree, a
// memory snapshot (runsc checkpoint) holds them and a restore or fork
// brings them back. The restored agent's connection to the old socket is
// dead; it connects again to the same path, which in the restored
// container is the new container's directory, where the new container
// already listens.
//
// The agent runs as the sandbox user with the container's limits: it can
// do nothing the commands it runs could not do themselves, and anything in
// the sandbox may kill or impersonate it. Neither gains the sandbox
// anything: a dead agent sends Exec back to runsc exec (pid 1 starts it
// again, and its first connection brings the commands back to it), and an
// impostor answers only for this sandbox's own commands, on this
// sandbox's own socket. Where the agent cannot start a command (F), Exec
// falls back to runsc exec too, so errors read as before.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

const (
	agentSocketName = "exec.sock"
	// agentIdleMax bounds the idle connections kept from one container; a
	// program in the sandbox that connects more is closed on.
	agentIdleMax = 4
	// agentFrameMax bounds one frame from the agent (the agent sends at
	// most 64 KiB of output per frame).
	agentFrameMax = 1 << 20
)

// errNoAgent means the agent cannot run this command: use runsc exec.
var errNoAgent = errors.New("no exec agent")

// agent is the daemon's side of one container's exec agent.
type agent struct {
	ln    *net.UnixListener
	idle  chan *net.UnixConn
	ready chan struct{} // closed at the first connection
	once  sync.Once
	// dead: a connection ended before its command's exit code, or none
	// came in time; commands go through runsc exec until the agent (pid 1
	// starts it again) connects again.
	dead atomic.Bool
	// warmed: a pooled container's throwaway command (warm.go) ran.
	warmed atomic.Bool
	// relays holds a token per relayed port connection (ports.go).
	relays chan struct{}
	// terms holds a token per open terminal (terminal.go).
	terms chan struct{}
}

// listenAgent listens on the container's exec socket, before the
// container starts (or is restored) so that its agent finds it. Without
// --host-uds (no egress) or python3 the container has no agent.
func (c *container) listenAgent() error {
	if !c.tier.egress || c.tier.noAgent || c.noRelay {
		return nil
	}
	ln, err := listenUnix(filepath.Join(c.egressDir(), agentSocketName))
	if err != nil {
		return fmt.Errorf("exec agent socket: %w", err)
	}
	a := &agent{ln: ln, idle: make(chan *net.UnixConn, agentIdleMax), ready: make(chan struct{}),
		relays: make(chan struct{}, portRelayMax), terms: make(chan struct{}, termMax)}
	go a.accept()
	c.agent = a
	return nil
}

// waitAgent waits (up to wait) for the agent's first connection, so that
// a pooled sandbox is claimed with its agent ready; a slow start only
// costs the first commands their runsc exec.
func (c *container) waitAgent(ctx context.Context, wait time.Duration) {
	a := c.agent
	if a == nil {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-a.ready:
	case <-t.C:
		a.dead.Store(true)
		b, _ := os.ReadFile(filepath.Join(c.bundle, "run.log"))
		c.tier.log.Warn("gvisor exec agent did not connect; commands use runsc exec", "cid", c.cid, "log", lastLines(string(b), 3))
	case <-ctx.Done():
	}
}

// agentPID asks the agent its pid inside the sandbox; 0 if it cannot.
func (c *container) agentPID(ctx context.Context) int {
	if c.agent == nil {
		return 0
	}
	conn, err := c.agent.conn(ctx)
	if err != nil {
		return 0
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(`{"op":"pid"}` + "\n")); err != nil {
		return 0
	}
	var h [5]byte
	r := bufio.NewReader(conn)
	if _, err := io.ReadFull(r, h[:]); err != nil || h[0] != 'P' || binary.BigEndian.Uint32(h[1:]) > 16 {
		return 0
	}
	b := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(b))
	return pid
}

func listenUnix(path string) (*net.UnixListener, error) {
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	// The sandbox user must be allowed to connect (the sentry checks the
	// mode inside); on the host, the bundle directory (0700) keeps every
	// other user out.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func (a *agent) accept() {
	for {
		conn, err := a.ln.AcceptUnix()
		if err != nil {
			return
		}
		a.once.Do(func() { close(a.ready) })
		select {
		case a.idle <- conn:
			a.dead.Store(false)
		default:
			conn.Close()
		}
	}
}

// close stops listening and closes the idle connections; the agent keeps
// trying to connect, with a growing pause, until the container is deleted.
func (a *agent) close() {
	a.ln.Close()
	for {
		select {
		case conn := <-a.idle:
			conn.Close()
		default:
			return
		}
	}
}

// conn takes an idle connection whose agent still lives, waiting a moment
// for one (the agent connects a new one as it takes a request) unless the
// agent is known dead.
func (a *agent) conn(ctx context.Context) (*net.UnixConn, error) {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case conn := <-a.idle:
			if connAlive(conn) {
				return conn, nil
			}
			conn.Close()
			continue
		default:
		}
		if a.dead.Load() {
			return nil, errNoAgent
		}
		select {
		case conn := <-a.idle:
			if connAlive(conn) {
				return conn, nil
			}
			conn.Close()
		case <-t.C:
			a.dead.Store(true)
			return nil, errNoAgent
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// connAlive: an idle connection has nothing to read until its request, so
// a readable one is closed (its agent died).
func connAlive(conn *net.UnixConn) bool {
	raw, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		alive = errors.Is(err, unix.EAGAIN)
		return true
	})
	return alive
}

type agentRequest struct {
	Op    string   `json:"op,omitempty"` // "" runs a command; "pty" (terminal.go)
	Rows  uint16   `json:"rows,omitempty"`
	Cols  uint16   `json:"cols,omitempty"`
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	Cwd   string   `json:"cwd"`
	Stdin bool     `json:"stdin"`
	Bg    bool     `json:"bg,omitempty"`
}

// agentFor is the agent that may run p: none when the container has none,
// or when p is not the sandbox user's (the agent runs as the sandbox user:
// a build step's root goes to runsc exec).
func (c *container) agentFor(p *specs.Process) *agent {
	if p.User.UID != sandbox.SandboxUID {
		return nil
	}
	return c.agent
}

// agentSend sends req (for p) to the agent that may run p on a
// connection of its own, which the caller closes; errNoAgent, before
// anything ran, when runsc exec must run p instead.
func (c *container) agentSend(ctx context.Context, p *specs.Process, req agentRequest) (*agent, net.Conn, error) {
	a := c.agentFor(p)
	if a == nil {
		return nil, nil, errNoAgent
	}
	conn, err := a.conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		conn.Close()
		a.dead.Store(true)
		return nil, nil, errNoAgent
	}
	return a, conn, nil
}

// agentStart starts p in the background through the agent and returns
// its pid inside the sandbox; errNoAgent, before anything ran, when runsc
// exec must start it instead.
func (c *container) agentStart(ctx context.Context, p *specs.Process) (int, error) {
	a, conn, err := c.agentSend(ctx, p, agentRequest{Args: p.Args, Env: p.Env, Cwd: p.Cwd, Bg: true})
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil || binary.BigEndian.Uint32(h[1:]) > 64 {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		a.dead.Store(true)
		return -1, errNoAgent
	}
	b := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, b); err != nil || h[0] != 'P' {
		return -1, errNoAgent // F: runsc exec reports the error
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil || pid <= 1 {
		return -1, fmt.Errorf("exec agent: pid %q", b)
	}
	return pid, nil
}

// agentExec runs p through the agent. It answers errNoAgent, before
// anything ran, when runsc exec must run the command instead.
func (c *container) agentExec(ctx context.Context, p *specs.Process, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	_, conn, err := c.agentSend(ctx, p, agentRequest{Args: p.Args, Env: p.Env, Cwd: p.Cwd, Stdin: stdin != nil})
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	var wmu sync.Mutex
	send := func(t byte, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		h := [5]byte{t}
		binary.BigEndian.PutUint32(h[1:], uint32(len(b)))
		_, err := conn.Write(append(h[:], b...))
		return err
	}
	onStart := func() {
		if stdin == nil {
			return
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && send('I', buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send('C', nil)
					return
				}
			}
		}()
	}
	stop := context.AfterFunc(ctx, func() {
		// The timer first: send waits for wmu, which a stdin write the
		// agent is not reading (it drains stdin into the command) can hold.
		time.AfterFunc(5*time.Second, func() { conn.Close() })
		_ = send('K', nil)
	})
	defer stop()
	return c.readAgent(ctx, bufio.NewReader(conn), onStart, stdout, stderr)
}

// readAgent reads the agent's frames up to the exit code.
func (c *container) readAgent(ctx context.Context, r *bufio.Reader, onStart func(), stdout, stderr io.Writer) (int, error) {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	started := false
	pid := 0
	for {
		var h [5]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return c.agentLost(ctx, started, pid)
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > agentFrameMax {
			return c.agentLost(ctx, started, pid)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return c.agentLost(ctx, started, pid)
		}
		switch h[0] {
		case 'P':
			started = true
			pid, _ = strconv.Atoi(string(b))
			onStart()
		case 'O':
			_, _ = stdout.Write(b)
		case 'E':
			_, _ = stderr.Write(b)
		case 'F':
			return -1, errNoAgent
		case 'X':
			code, err := strconv.Atoi(string(b))
			if err != nil {
				return -1, fmt.Errorf("exec agent: exit code %q", b)
			}
			return code, nil
		}
	}
}

// agentLost handles a connection that ended before the exit code: the
// agent died (often with the command, as under kill -9 -1), or the caller
// gave up and the connection was closed.
func (c *container) agentLost(ctx context.Context, started bool, pid int) (int, error) {
	if ctx.Err() != nil {
		if pid > 1 {
			kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.killGroup(kctx, pid)
			cancel()
		}
		return -1, ctx.Err()
	}
	c.agent.dead.Store(true)
	if !started {
		return -1, errNoAgent
	}
	// The sandbox kernel may have died under the command (as at its
	// memory limit); its exit shows on the pidfd a moment later.
	if err := c.waitFailure(3 * time.Second); err != nil {
		return -1, err
	}
	return 128 + int(unix.SIGKILL), nil
}
