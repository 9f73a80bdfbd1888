//go:build linux

package gvisor

// The exec agent: one long-lived process in each container (agentPy) runs
// the commands of Exec, so a command costs a message on a Unix socket
// instead of a runsc exec (a Go program that loads the container's state,
// joins its namespaces and asks the sandbox kernel to start the process).
// The daemon listens on exec.sock in the container's /run/agentcloud
// directory; the agent, started with the container (in the warm pool),
// connects to it through runsc's --host-uds=open and keeps one idle
// connection there.
//
// The agent runs as the sandbox user with the container's limits: it can
// do nothing the commands it runs could not do themselves, and anything in
// the sandbox may kill or impersonate it. Neither gains the sandbox
// anything: a dead agent sends Exec back to runsc exec, and an impostor
// answers only for this sandbox's own commands. Where the agent cannot
// start a command (F), Exec falls back to runsc exec too, so errors read
// as before.

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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	ln   *net.UnixListener
	idle chan *net.UnixConn
	dead atomic.Bool // a connection ended before its command's exit code
	cmd  *exec.Cmd   // the runsc exec that runs the agent
	pid  int         // the agent's pid inside the sandbox, 0 if unknown
}

// startAgent listens on the container's exec socket and starts the agent
// in it. Without --host-uds (no egress) the container has no agent.
func (c *container) startAgent(ctx context.Context) error {
	if !c.tier.egress || c.tier.noAgent {
		return nil
	}
	path := filepath.Join(c.egressDir(), agentSocketName)
	ln, err := listenUnix(path)
	if err != nil {
		return fmt.Errorf("exec agent socket: %w", err)
	}
	a := &agent{ln: ln, idle: make(chan *net.UnixConn, agentIdleMax)}
	go a.accept()
	p := &specs.Process{
		Args: []string{forwarderPython, "-I", "-S", "-c", agentPy, egressMount + "/" + agentSocketName},
		Env:  sandbox.MergeEnv(),
		Cwd:  "/",
		User: specs.User{UID: sandbox.SandboxUID, GID: sandbox.SandboxGID},
		// Inherited by every command it starts: setuid binaries gain
		// nothing, and no capabilities.
		NoNewPrivileges: true,
		Capabilities:    &specs.LinuxCapabilities{},
	}
	procFile, err := c.writeProcess(p)
	if err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(procFile)
	// Not --detach: runsc exec --detach of older releases passes its own
	// flags to the command. This runsc exec stays on the host until the
	// agent exits (at the latest when the container is deleted).
	pidFile := filepath.Join(c.bundle, "agent.pid")
	a.cmd = exec.Command(c.tier.runsc, c.tier.runscArgs("exec", "--process", procFile, "--internal-pid-file", pidFile, c.cid)...)
	logPath := filepath.Join(c.bundle, "agent.log")
	if logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
		a.cmd.Stdout, a.cmd.Stderr = logf, logf
		defer logf.Close()
	}
	if err := a.cmd.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("start exec agent: %w", err)
	}
	go func() {
		_ = a.cmd.Wait()
		a.dead.Store(true)
	}()
	c.agent = a
	// Wait for the first connection, so that a pooled sandbox is claimed
	// with its agent ready; a slow start only costs the first command its
	// runsc exec.
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case conn := <-a.idle:
		a.idle <- conn
		if b, err := os.ReadFile(pidFile); err == nil {
			a.pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	case <-t.C:
		b, _ := os.ReadFile(logPath)
		c.tier.log.Warn("gvisor exec agent did not connect; commands use runsc exec", "cid", c.cid, "log", lastLines(string(b), 3))
	case <-ctx.Done():
	}
	return nil
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
		select {
		case a.idle <- conn:
		default:
			conn.Close()
		}
	}
}

// close stops listening and closes the idle connections; the agent exits
// when it cannot connect again (or with the container).
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

// conn takes an idle connection whose agent still lives.
func (a *agent) conn(ctx context.Context) (*net.UnixConn, error) {
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
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
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	Cwd   string   `json:"cwd"`
	Stdin bool     `json:"stdin"`
}

// agentExec runs p through the agent. It answers errNoAgent, before
// anything ran, when runsc exec must run the command instead.
func (c *container) agentExec(ctx context.Context, p *specs.Process, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	a := c.agent
	if a == nil || p.User.UID != sandbox.SandboxUID {
		// The agent runs as the sandbox user: a build step's root goes
		// to runsc exec.
		return -1, errNoAgent
	}
	conn, err := a.conn(ctx)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	req, _ := json.Marshal(agentRequest{Args: p.Args, Env: p.Env, Cwd: p.Cwd, Stdin: stdin != nil})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		a.dead.Store(true)
		return -1, errNoAgent
	}
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
		_ = send('K', nil)
		time.AfterFunc(5*time.Second, func() { conn.Close() })
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
