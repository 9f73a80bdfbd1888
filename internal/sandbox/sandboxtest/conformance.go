// Package sandboxtest holds the suites every sandbox tier must pass: a
// conformance suite for the sandbox.Sandbox contract, a hostile suite of
// escape and exhaustion attempts, a failure suite (full disks, a dead
// init), the socket family allowlist, and shared benchmarks. Tiers call
// them from their own tests with a ready sandbox.Tier; the suites create and
// close their own sandboxes.
package sandboxtest

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Options adapt the suites to a tier.
type Options struct {
	// AfterClose, if set, runs after a sandbox with a leftover background
	// process was closed, to check from the host that nothing survived.
	AfterClose func(t *testing.T, sb sandbox.Sandbox)
	// StrictErrno requires blocked system calls to fail with EPERM exactly
	// (the process tier's seccomp); otherwise any failure passes.
	StrictErrno bool
	// ExecTimeout bounds ordinary execs; default 20s.
	ExecTimeout time.Duration
	// MemoryHogMayFail accepts that a memory hog fails the whole sandbox
	// (sandbox.ErrFailed, with an out-of-memory reason) rather than only
	// the hog: containment then holds if a new sandbox still works. The
	// host kills gVisor's sentry when the sandbox's memory runs out.
	MemoryHogMayFail bool
	// KillInit, if set, kills the sandbox's init (or sandbox kernel) from
	// the host, as the OOM killer would; the failure suite needs it.
	KillInit func(t *testing.T, sb sandbox.Sandbox)
	// SentryEmulated lists calls of the dangerous-syscall script that may
	// succeed because the tier emulates them inside its own kernel (gVisor's
	// sentry), where they reach nothing on the host.
	SentryEmulated map[string]bool
}

func (o Options) timeout() time.Duration {
	if o.ExecTimeout > 0 {
		return o.ExecTimeout
	}
	return 20 * time.Second
}

func newSandbox(t *testing.T, tier sandbox.Tier, spec sandbox.Spec) sandbox.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), spec)
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

// run executes a shell command and returns stdout, stderr and exit code.
func run(t *testing.T, ctx context.Context, sb sandbox.Sandbox, script string) (string, string, int, error) {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}}, &out, &errb)
	return out.String(), errb.String(), code, err
}

// mustRun runs script and fails the test on an error or non-zero exit.
func mustRun(t *testing.T, sb sandbox.Sandbox, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return mustRunCtx(t, ctx, sb, script)
}

// mustRunCtx is mustRun bounded by ctx.
func mustRunCtx(t *testing.T, ctx context.Context, sb sandbox.Sandbox, script string) string {
	t.Helper()
	out, errs, code, err := run(t, ctx, sb, script)
	if err != nil || code != 0 {
		t.Fatalf("%q: code=%d err=%v stderr=%s", script, code, err, errs)
	}
	return out
}

// Conformance runs the sandbox.Sandbox contract against tier.
func Conformance(t *testing.T, tier sandbox.Tier, opt Options) {
	t.Run("ExecExitCodeAndStreams", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		out, errs, code, err := run(t, ctx, sb, "echo out; echo err >&2; exit 3")
		if err != nil || code != 3 || out != "out\n" || errs != "err\n" {
			t.Fatalf("got code=%d err=%v stdout=%q stderr=%q", code, err, out, errs)
		}
		code, err = sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/no/such/binary"}, nil, nil)
		if err == nil && code == 0 {
			t.Fatal("exec of a missing binary succeeded")
		}
	})
	t.Run("StreamsWhileRunning", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		w := &firstWrite{}
		start := time.Now()
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "echo first; sleep 1; echo second"}}, w, nil)
		end := time.Now()
		if err != nil || code != 0 {
			t.Fatalf("code=%d err=%v", code, err)
		}
		if w.at.IsZero() || end.Sub(w.at) < 700*time.Millisecond {
			t.Fatalf("first output not streamed: first write %v after start, exec took %v", w.at.Sub(start), end.Sub(start))
		}
		if got := w.String(); got != "first\nsecond\n" {
			t.Fatalf("stdout %q", got)
		}
	})
	t.Run("Stdin", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		var out bytes.Buffer
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "cat", Stdin: strings.NewReader("hello\nworld\n")}, &out, nil)
		if err != nil || code != 0 || out.String() != "hello\nworld\n" {
			t.Fatalf("code=%d err=%v out=%q", code, err, out.String())
		}
	})
	t.Run("EnvAndCwd", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{Env: map[string]string{"FOO": "spec", "BAR": "spec"}})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		if err := sb.Mkdir(ctx, "/workspace/sub/dir", 0o755); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		code, err := sb.Exec(ctx, sandbox.ExecSpec{
			Cmd: "sh", Args: []string{"-c", `echo "$FOO $BAR $HOME"; pwd; id -u`},
			Env: map[string]string{"BAR": "exec"}, Cwd: "/workspace/sub/dir",
		}, &out, nil)
		want := "spec exec /workspace\n/workspace/sub/dir\n1000\n"
		if err != nil || code != 0 || out.String() != want {
			t.Fatalf("code=%d err=%v out=%q want %q", code, err, out.String(), want)
		}
	})
	t.Run("Files", func(t *testing.T) { testFiles(t, tier, opt) })
	t.Run("BackgroundAndSignal", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		pid, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "echo started; exec sleep 1000"}, OutputFile: "/tmp/bg.log"})
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, func() bool {
			procs, err := sb.Processes(ctx)
			return err == nil && hasPID(procs, pid)
		})
		waitUntil(t, 10*time.Second, func() bool {
			var b bytes.Buffer
			return sb.ReadFile(ctx, "/tmp/bg.log", &b) == nil && b.String() == "started\n"
		})
		if err := sb.Signal(ctx, pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, func() bool {
			procs, err := sb.Processes(ctx)
			return err == nil && !hasLivePID(procs, pid)
		})
	})
	t.Run("PauseResume", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "while :; do echo x >> /workspace/ticks; sleep 0.02; done"}}); err != nil {
			t.Fatal(err)
		}
		size := func() int64 {
			fi, err := sb.Stat(ctx, "/workspace/ticks")
			if err != nil {
				return 0
			}
			return fi.Size
		}
		waitUntil(t, 10*time.Second, func() bool { return size() > 0 })
		if err := sb.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		s1 := size()
		time.Sleep(300 * time.Millisecond)
		if s2 := size(); s2 != s1 {
			t.Fatalf("file grew while paused: %d -> %d", s1, s2)
		}
		if err := sb.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, func() bool { return size() > s1 })
		mustRun(t, sb, "true")
	})
	t.Run("CloseKillsLeftovers", func(t *testing.T) {
		sb := newSandbox(t, tier, sandbox.Spec{})
		ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
		defer cancel()
		marker := "leftover-" + sb.ID()
		if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "trap '' TERM HUP INT; while :; do sleep 1; done; echo " + marker}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := sb.Close(); err != nil {
			t.Fatal(err)
		}
		if pids := hostPIDsWithMarker(marker); len(pids) > 0 {
			t.Fatalf("host processes survived Close: %v", pids)
		}
		if opt.AfterClose != nil {
			opt.AfterClose(t, sb)
		}
		if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "true"}, nil, nil); !errors.Is(err, sandbox.ErrClosed) {
			t.Fatalf("exec after close: %v, want ErrClosed", err)
		}
		if err := sb.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}

func testFiles(t *testing.T, tier sandbox.Tier, opt Options) {
	sb := newSandbox(t, tier, sandbox.Spec{})
	ctx, cancel := context.WithTimeout(context.Background(), opt.timeout())
	defer cancel()
	if err := sb.WriteFile(ctx, "/workspace/a/b.txt", strings.NewReader("x"), 0o644); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if err := sb.Mkdir(ctx, "a/deep/er", 0); err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile(ctx, "/workspace/a/b.txt", strings.NewReader("hello from host"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, sb, "cat /workspace/a/b.txt; echo; python3 -c 'import os; s = os.stat(\"/workspace/a/b.txt\"); print(s.st_uid, oct(s.st_mode & 0o777))'; echo sandbox > /workspace/a/c.txt; echo tmp > /tmp/t.txt"); got != "hello from host\n1000 0o600\n" {
		t.Fatalf("sandbox view: %q", got)
	}
	var b bytes.Buffer
	if err := sb.ReadFile(ctx, "a/c.txt", &b); err != nil || b.String() != "sandbox\n" {
		t.Fatalf("read: %v %q", err, b.String())
	}
	b.Reset()
	if err := sb.ReadFile(ctx, "/tmp/t.txt", &b); err != nil || b.String() != "tmp\n" {
		t.Fatalf("read /tmp: %v %q", err, b.String())
	}
	fi, err := sb.Stat(ctx, "/workspace/a/b.txt")
	if err != nil || fi.Size != 15 || fi.IsDir || fi.Mode.Perm() != 0o600 || fi.Path != "/workspace/a/b.txt" {
		t.Fatalf("stat: %+v %v", fi, err)
	}
	list, err := sb.List(ctx, "/workspace/a")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range list {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"b.txt", "c.txt", "deep"}) {
		t.Fatalf("list: %v", names)
	}
	if err := sb.Remove(ctx, "/workspace/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Stat(ctx, "/workspace/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after remove: %v", err)
	}
	for _, p := range []string{"/etc/passwd", "/workspace/../etc/passwd", "/proc/1/environ", "/", "/usr/bin/python3"} {
		if err := sb.ReadFile(ctx, p, &b); !errors.Is(err, sandbox.ErrPathNotAllowed) {
			t.Errorf("read %s: %v, want ErrPathNotAllowed", p, err)
		}
		if err := sb.WriteFile(ctx, p, strings.NewReader("x"), 0o644); !errors.Is(err, sandbox.ErrPathNotAllowed) {
			t.Errorf("write %s: %v, want ErrPathNotAllowed", p, err)
		}
	}
	// Symlinks planted inside must not lead the host outside.
	mustRun(t, sb, "ln -s /etc/passwd /workspace/link; ln -s / /workspace/rootlink; ln -s ../../../../etc /workspace/up")
	for _, p := range []string{"/workspace/link", "/workspace/rootlink/etc/passwd", "/workspace/up/passwd"} {
		b.Reset()
		err := sb.ReadFile(ctx, p, &b)
		if err == nil || strings.Contains(b.String(), "root:") {
			t.Errorf("read through symlink %s: err=%v content=%q", p, err, b.String())
		}
	}
	if err := sb.WriteFile(ctx, "/workspace/link", strings.NewReader("x"), 0o644); err == nil {
		t.Error("write through a symlink succeeded")
	}
	if err := sb.Remove(ctx, "/workspace"); err == nil {
		t.Error("removing /workspace itself succeeded")
	}
}

type firstWrite struct {
	mu  sync.Mutex
	at  time.Time
	buf bytes.Buffer
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at.IsZero() {
		w.at = time.Now()
	}
	return w.buf.Write(p)
}

func (w *firstWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasPID(procs []sandbox.Process, pid int) bool {
	for _, p := range procs {
		if p.PID == pid {
			return true
		}
	}
	return false
}

func hasLivePID(procs []sandbox.Process, pid int) bool {
	for _, p := range procs {
		if p.PID == pid && p.State != "Z" {
			return true
		}
	}
	return false
}

// hostPIDsWithMarker scans the host's /proc for command lines containing
// marker.
func hostPIDsWithMarker(marker string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(marker)) {
			out = append(out, e.Name()+":"+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
