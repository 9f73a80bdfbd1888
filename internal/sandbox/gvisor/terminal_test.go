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
	// Let it fill the buffers: the host's holds at most termBufMax.
	ft := flood.(*terminal)
	held := 0
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ft.mu.Lock()
		held = ft.out.Len()
		ft.mu.Unlock()
		if held >= termBufMax/2 || time.Now().After(deadline) {
			break
		}
	}
	if held == 0 || held > termBufMax+agentFrameMax {
		t.Errorf("%d bytes of unread output held", held)
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
