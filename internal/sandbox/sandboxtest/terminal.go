package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// termReader collects a terminal's output in the background.
type termReader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func readTerminal(term sandbox.Terminal) *termReader {
	r := &termReader{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		b := make([]byte, 4096)
		for {
			n, err := term.Read(b)
			r.mu.Lock()
			r.buf.Write(b[:n])
			r.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return r
}

// waitFor waits until the output contains s.
func (r *termReader) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := strings.Contains(r.buf.String(), s)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.done:
			r.mu.Lock()
			ok := strings.Contains(r.buf.String(), s)
			out := r.buf.String()
			r.mu.Unlock()
			if !ok {
				t.Fatalf("terminal ended without %q; output %q", s, out)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no %q on the terminal after 20s; output %q", s, r.buf.String())
}

// TerminalClass checks a tier's terminals: a shell round trip, the
// window size seen by stty and changed by Resize, Ctrl-C and signals to
// the process group, exit codes, that the terminal is the process's
// controlling tty inside the sandbox's own devpts, and refused sizes.
func TerminalClass(t *testing.T, tier sandbox.Tier) {
	ctx := context.Background()
	sb, err := sandbox.Create(ctx, tier, "term", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	tm, ok := sb.(sandbox.Terminaler)
	if !ok {
		t.Skipf("tier %s has no terminals", tier.Name())
	}
	k := termKit{sb: sb, tm: tm}
	terminalIO(t, k)
	terminalSignals(t, k)
	t.Run("private devpts", func(t *testing.T) {
		// Only this sandbox's terminals are visible: one open terminal
		// here, so /dev/pts holds ptmx and one terminal only (gVisor's
		// devpts does not reuse a freed terminal's number at once).
		term, out := k.open(t, "sh", "-c", "echo pts-$(ls /dev/pts | wc -l)-$(ls /dev/pts | grep -c ptmx)-end")
		out.waitFor(t, "pts-2-1-end")
		k.wait(t, term)
	})
	t.Run("bad size", func(t *testing.T) {
		for _, bad := range []sandbox.WindowSize{{}, {Rows: 24}, {Cols: 80}, {Rows: 2000, Cols: 80}} {
			term, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "sh"}, bad)
			if err == nil {
				term.Close()
				t.Errorf("size %+v accepted", bad)
			}
		}
	})
	t.Run("missing command", func(t *testing.T) {
		_, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "no-such-program"}, sandbox.WindowSize{Rows: 24, Cols: 80})
		if err == nil || !errors.Is(err, syscall.ENOENT) {
			t.Errorf("missing program: %v", err)
		}
	})
}

// waitProcess waits until a process named name runs in sb.
func waitProcess(t *testing.T, sb sandbox.Sandbox, name string) {
	t.Helper()
	for range 1000 {
		procs, err := sb.Processes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range procs {
			if len(p.Cmdline) > 0 && strings.HasSuffix(p.Cmdline[0], name) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s process in the sandbox", name)
}

// termKit opens terminals in one sandbox for TerminalClass.
type termKit struct {
	sb sandbox.Sandbox
	tm sandbox.Terminaler
}

func (k termKit) open(t *testing.T, cmd string, args ...string) (sandbox.Terminal, *termReader) {
	t.Helper()
	term, err := k.tm.Terminal(context.Background(), sandbox.ExecSpec{Cmd: cmd, Args: args, Env: map[string]string{"TERM": "xterm", "PS1": "$ "}},
		sandbox.WindowSize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return term, readTerminal(term)
}

func (k termKit) wait(t *testing.T, term sandbox.Terminal) int {
	t.Helper()
	wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, err := term.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// terminalIO: a round trip, the window size and Ctrl-C typed.
func terminalIO(t *testing.T, k termKit) {
	sb := k.sb
	t.Run("round trip", func(t *testing.T) {
		term, out := k.open(t, "sh")
		if _, err := io.WriteString(term, "echo h''i; tty; exit 7\n"); err != nil {
			t.Fatal(err)
		}
		out.waitFor(t, "hi\r\n")
		out.waitFor(t, "/dev/pts/0")
		if code := k.wait(t, term); code != 7 {
			t.Errorf("exit code %d, want 7", code)
		}
		<-out.done // output ends with the process
	})
	t.Run("resize", func(t *testing.T) {
		term, out := k.open(t, "sh")
		io.WriteString(term, "stty size\n")
		out.waitFor(t, "24 80")
		if err := term.Resize(sandbox.WindowSize{Rows: 50, Cols: 132}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(term, "stty size; exit\n")
		out.waitFor(t, "50 132")
		for _, bad := range []sandbox.WindowSize{{}, {Rows: 0, Cols: 80}, {Rows: 24, Cols: 0}, {Rows: 1001, Cols: 80}, {Rows: 24, Cols: 65535}} {
			if err := term.Resize(bad); err == nil {
				t.Errorf("resize %+v accepted", bad)
			}
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		term, out := k.open(t, "sh")
		io.WriteString(term, "sleep 100\n")
		waitProcess(t, sb, "sleep")
		// The line discipline's Ctrl-C; its echo ("^C", ECHOCTL) is a
		// rendering gVisor's line discipline leaves out, so the check is
		// the shell's status of the interrupted job.
		io.WriteString(term, "\x03")
		io.WriteString(term, "echo after-$?\n")
		out.waitFor(t, "after-130")
		io.WriteString(term, "exit 0\n")
		if code := k.wait(t, term); code != 0 {
			t.Errorf("exit code %d", code)
		}
	})
}

// terminalSignals: signals to the foreground job and the session, and
// Close as a hang-up.
func terminalSignals(t *testing.T, k termKit) {
	sb, ctx := k.sb, context.Background()
	t.Run("signal foreground job", func(t *testing.T) {
		// A shell runs a job in a process group of its own; a signal goes
		// to the terminal's foreground group, as Ctrl-C would.
		term, out := k.open(t, "sh")
		io.WriteString(term, "sleep 100\n")
		waitProcess(t, sb, "sleep")
		if err := term.Signal(ctx, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		io.WriteString(term, "echo after-$?\n")
		out.waitFor(t, "after-130")
		io.WriteString(term, "exit\n")
		k.wait(t, term)
	})
	t.Run("signal", func(t *testing.T) {
		term, _ := k.open(t, "sleep", "100")
		if err := term.Signal(ctx, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := k.wait(t, term); code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit code %d, want %d", code, 128+int(syscall.SIGTERM))
		}
	})
	t.Run("close kills", func(t *testing.T) {
		term, out := k.open(t, "sleep", "100")
		term.Close()
		if code := k.wait(t, term); code != 128+int(syscall.SIGKILL) {
			t.Errorf("exit code %d after close", code)
		}
		<-out.done
		term.Close() // idempotent
	})
}
