package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Failure checks what a sandbox does when it stops working underneath its
// users, and that filling its disks is not such a case:
//
//   - DisksFullStayRunning: with disks larger than its memory, filling
//     /workspace and then /tmp answers ErrDiskLimit and the sandbox keeps
//     working (file pages count against the memory cgroup, and used to
//     get its init killed);
//   - InitKilled: once its init (or sandbox kernel) is killed from the
//     host, Failure says why, every operation (exec, start, processes,
//     signal, files, pause) answers an error matching sandbox.ErrFailed
//     with that reason, and Close still frees it.
//
// opt.KillInit is required for the second.
func Failure(t *testing.T, tier sandbox.Tier, opt Options) {
	t.Run("DisksFullStayRunning", func(t *testing.T) {
		// 2 × 160 MiB of files: more than the memory and, for gVisor, the
		// sentry's share on top of it, which is what the cgroup used to be.
		spec := sandbox.Spec{Limits: sandbox.Limits{CPUs: 1, MemoryMB: 32, Pids: 64, DiskMB: 160}}
		sb := newSandbox(t, tier, spec)
		for _, dir := range []string{"/workspace", "/tmp"} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // gVisor writes through its gofer
			_, errs, code, err := run(t, ctx, sb, fmt.Sprintf("head -c %d /dev/zero > %s/fill", 200<<20, dir))
			cancel()
			if code == 0 {
				t.Fatalf("wrote 200 MiB to %s under a 160 MiB disk limit", dir)
			}
			if !errors.Is(err, sandbox.ErrDiskLimit) {
				t.Fatalf("fill %s: code=%d err=%v stderr=%q, want ErrDiskLimit", dir, code, err, errs)
			}
		}
		if err := sb.Failure(); err != nil {
			t.Fatalf("full disks failed the sandbox: %v", err)
		}
		out := mustRun(t, sb, `python3 -c "x = bytearray(16 << 20); print('alive', len(x) >> 20)"`)
		if out != "alive 16\n" {
			t.Fatalf("after filling both disks: %q", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if fi, err := sb.Stat(ctx, "/workspace/fill"); err != nil || fi.Size < 150<<20 {
			t.Fatalf("stat the full disk's file: %+v, %v", fi, err)
		}
	})
	t.Run("InitKilled", func(t *testing.T) {
		if opt.KillInit == nil {
			t.Skip("the tier gave no way to kill its init")
		}
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		mustRun(t, sb, "echo x > /workspace/f")
		if err := sb.Failure(); err != nil {
			t.Fatalf("healthy sandbox reports %v", err)
		}
		opt.KillInit(t, sb)
		waitUntil(t, 10*time.Second, func() bool { return sb.Failure() != nil })
		ferr := sb.Failure()
		reason := sandbox.FailureReason(ferr)
		if !errors.Is(ferr, sandbox.ErrFailed) || reason == "" || !strings.Contains(ferr.Error(), sb.ID()) {
			t.Fatalf("Failure() = %v (reason %q), want a *FailedError with a reason", ferr, reason)
		}
		t.Logf("failure: %v", ferr)
		want := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, sandbox.ErrFailed) || sandbox.FailureReason(err) != reason {
				t.Errorf("%s on a failed sandbox: %v, want ErrFailed with reason %q", op, err, reason)
			}
		}
		var b bytes.Buffer
		_, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "true"}, &b, &b)
		want("exec", err)
		_, err = sb.Start(ctx, sandbox.ExecSpec{Cmd: "sleep", Args: []string{"1"}})
		want("start", err)
		_, err = sb.Processes(ctx)
		want("processes", err)
		want("signal", sb.Signal(ctx, 2, syscall.SIGTERM))
		want("read file", sb.ReadFile(ctx, "/workspace/f", &b))
		want("write file", sb.WriteFile(ctx, "/workspace/g", strings.NewReader("x"), 0o644))
		_, err = sb.List(ctx, "/workspace")
		want("list", err)
		_, err = sb.Stat(ctx, "/workspace/f")
		want("stat", err)
		want("mkdir", sb.Mkdir(ctx, "/workspace/d", 0o755))
		want("remove", sb.Remove(ctx, "/workspace/f"))
		want("pause", sb.Pause(ctx))
		if err := sb.Close(); err != nil {
			t.Fatalf("close a failed sandbox: %v", err)
		}
		if err := sb.Failure(); err != nil {
			t.Fatalf("Failure after Close: %v, want nil", err)
		}
		if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "true"}, nil, nil); !errors.Is(err, sandbox.ErrClosed) {
			t.Fatalf("exec after close: %v, want ErrClosed", err)
		}
		// Other sandboxes of the tier are untouched.
		mustRun(t, newSandbox(t, tier, sandbox.Spec{}), "true")
	})
}
