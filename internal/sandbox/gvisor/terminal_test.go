//go:build linux

package gvisor

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestTerminalHostileClass: a terminal whose output nobody reads (yes)
// holds at most termBufMax on the host and still hangs up at Close; a
// terminal whose sandbox is closed under it ends (Wait errs, Read ends)
// instead of hanging; a closed sandbox opens no terminal.
func TestTerminalHostileClass(t *testing.T) {
	tier := newTestTier(t)
	ctx := context.Background()
	sb, err := sandbox.Create(ctx, tier, "term-hostile", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	tm := sb.(sandbox.Terminaler)
	size := sandbox.WindowSize{Rows: 24, Cols: 80}
	wait := func(term sandbox.Terminal) (int, error) {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return term.Wait(wctx)
	}

	flood, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "yes"}, size)
	if err != nil {
		t.Fatal(err)
	}
	// Let it fill the buffers, and keep watching a while after: the
	// host's never holds more than termBufMax and a frame.
	ft := flood.(*terminal)
	most, full := 0, time.Time{}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ft.mu.Lock()
		held := ft.out.Len()
		ft.mu.Unlock()
		most = max(most, held)
		if full.IsZero() && held >= termBufMax/2 {
			full = time.Now()
		}
		if !full.IsZero() && time.Since(full) > time.Second {
			break
		}
	}
	if most < termBufMax/2 || most > termBufMax+agentFrameMax {
		t.Errorf("at most %d bytes of unread output held, want the buffer filled and within %d", most, termBufMax+agentFrameMax)
	}
	// One sandbox holds at most termMax terminals: the next is refused
	// (a 429 at the API), and a place comes back when one closes.
	var more []sandbox.Terminal
	for range termMax - 1 {
		m, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "sleep", Args: []string{"100"}}, size)
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, m)
	}
	if _, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "true"}, size); !errors.Is(err, sandbox.ErrTerminals) {
		t.Errorf("terminal %d: %v, want ErrTerminals", termMax+1, err)
	}
	for _, m := range more {
		m.Close()
		if _, err := wait(m); err != nil {
			t.Fatal(err)
		}
	}
	flood.Close()
	if code, err := wait(flood); err != nil || code != 128+int(syscall.SIGKILL) {
		t.Errorf("flood after close: %d %v", code, err)
	}
	if n, err := flood.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after close: %d %v", n, err)
	}

	term, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "sleep", Args: []string{"100"}}, size)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, term)
		done <- err
	}()
	sb.Close()
	if _, err := wait(term); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait after the sandbox closed: %v", err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("read did not end after the sandbox closed")
	}
	term.Close()
	if _, err := tm.Terminal(ctx, sandbox.ExecSpec{Cmd: "sh"}, size); !errors.Is(err, sandbox.ErrClosed) {
		t.Errorf("terminal of a closed sandbox: %v", err)
	}
}
