package sandboxtest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// hostileLimits are small so exhaustion tests finish quickly.
var hostileLimits = sandbox.Limits{CPUs: 1, MemoryMB: 128, Pids: 64, DiskMB: 16}

// canaryEnv is set in the host process; no sandbox may ever see it.
const canaryEnv = "AGENTCLOUD_TEST_CANARY"

// Hostile runs escape and exhaustion attempts against tier. Each must be
// contained: the attempt fails (or is killed with a clear error) and the
// sandbox, the host and other sandboxes are unaffected.
func Hostile(t *testing.T, tier sandbox.Tier, opt Options) {
	canary := "canary-" + sandbox.NewID()
	os.Setenv(canaryEnv, canary)
	spec := sandbox.Spec{Limits: hostileLimits}

	t.Run("ForkBomb", func(t *testing.T) {
		// The pids limit stops the bomb, on every tier, and the sandbox
		// survives it: never ErrFailed or ErrClosed.
		sb := newSandbox(t, tier, spec)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, code, err := run(t, ctx, sb, "f(){ f | f & }; f; sleep 60")
		if !errors.Is(err, sandbox.ErrTimeout) && !errors.Is(err, sandbox.ErrPidsLimit) {
			t.Fatalf("fork bomb: code=%d err=%v, want timeout or pids limit", code, err)
		}
		t.Logf("fork bomb contained: %v", err)
		// Once the bomb's process group is gone the sandbox works again.
		waitUntil(t, 15*time.Second, func() bool {
			c2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel2()
			out, _, code, err := run(t, c2, sb, "echo alive")
			if errors.Is(err, sandbox.ErrFailed) || errors.Is(err, sandbox.ErrClosed) {
				t.Fatalf("the fork bomb took the sandbox down: %v", err)
			}
			return err == nil && code == 0 && out == "alive\n"
		})
		if err := sb.Failure(); err != nil {
			t.Fatalf("sandbox failed after the fork bomb: %v", err)
		}
		// It is still bounded: a second bomb meets the same limit.
		c3, cancel3 := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel3()
		out := mustRunCtx(t, c3, sb, `python3 -c "
import os, time
n = 0
try:
    for _ in range(10000):
        if os.fork() == 0:
            time.sleep(3); os._exit(0)
        n += 1
except OSError as e:
    print('refused after', n, e.errno)
"`)
		if !strings.HasPrefix(out, "refused after") {
			t.Fatalf("10000 forks under a pids limit of %d: %q", spec.Limits.Pids, out)
		}
		t.Logf("%s", out)
	})
	t.Run("KillEverything", func(t *testing.T) {
		// kill -9 -1 reaches every process the sandbox user may signal:
		// never the sandbox's init.
		sb := newSandbox(t, tier, spec)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sleep", Args: []string{"1000"}}); err != nil {
			t.Fatal(err)
		}
		_, _, code, err := run(t, ctx, sb, "kill -9 -1; kill -9 1; sleep 1")
		t.Logf("kill -9 -1: code=%d err=%v", code, err)
		if errors.Is(err, sandbox.ErrFailed) || errors.Is(err, sandbox.ErrClosed) {
			t.Fatalf("kill -9 -1 took the sandbox down: %v", err)
		}
		if out := mustRun(t, sb, "echo alive"); out != "alive\n" {
			t.Fatalf("after kill -9 -1: %q", out)
		}
		if err := sb.Failure(); err != nil {
			t.Fatalf("sandbox failed after kill -9 -1: %v", err)
		}
	})
	t.Run("MemoryHog", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, errs, code, err := run(t, ctx, sb, `python3 -c "x = 'a' * (512 << 20); print(len(x))"`)
		if code == 0 || strings.Contains(out, "536870912") {
			t.Fatalf("512 MiB allocated under a 128 MiB limit: code=%d out=%q", code, out)
		}
		if opt.MemoryHogMayFail && errors.Is(err, sandbox.ErrFailed) {
			t.Logf("memory hog failed the whole sandbox: %v", err)
			if reason := sandbox.FailureReason(sb.Failure()); !strings.Contains(reason, "out of memory") {
				t.Fatalf("failure reason %q, want out of memory", reason)
			}
			mustRun(t, newSandbox(t, tier, spec), "true")
			return
		}
		if !errors.Is(err, sandbox.ErrMemoryLimit) && !strings.Contains(errs, "MemoryError") {
			t.Fatalf("memory hog: code=%d err=%v stderr=%q, want ErrMemoryLimit", code, err, errs)
		}
		t.Logf("memory hog contained: code=%d err=%v", code, err)
		mustRun(t, sb, "true")
	})
	t.Run("DiskFill", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for _, dir := range []string{"/workspace", "/tmp"} {
			_, errs, code, err := run(t, ctx, sb, fmt.Sprintf("for i in 1 2 3 4 5 6 7 8; do head -c 4194304 /dev/zero > %s/f$i || exit 1; done", dir))
			if code == 0 {
				t.Fatalf("wrote 32 MiB to %s under a 16 MiB limit", dir)
			}
			if !errors.Is(err, sandbox.ErrDiskLimit) {
				t.Fatalf("disk fill %s: code=%d err=%v stderr=%q, want ErrDiskLimit", dir, code, err, errs)
			}
			t.Logf("disk fill %s contained: %v", dir, err)
		}
		if err := sb.WriteFile(ctx, "/workspace/more", io.LimitReader(zeros{}, 1<<20), 0o644); !errors.Is(err, sandbox.ErrDiskLimit) {
			t.Fatalf("host write into a full workspace: %v, want ErrDiskLimit", err)
		}
		mustRun(t, sb, "rm /workspace/f1 && echo ok > /workspace/ok")
	})
	t.Run("InfiniteLoopTimeout", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, _, _, err := run(t, ctx, sb, "while :; do :; done")
		if !errors.Is(err, sandbox.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("infinite loop: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("timeout took %v", d)
		}
		mustRun(t, sb, "true")
	})
	t.Run("WritesOutsideWritablePaths", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		for _, p := range []string{"/x", "/etc/x", "/etc/passwd", "/usr/bin/x", "/usr/lib/x", "/dev/x", "/proc/sys/kernel/hostname", "/proc/sysrq-trigger"} {
			out := mustRun(t, sb, fmt.Sprintf("(echo pwned > %s) 2>/dev/null && echo WROTE || echo denied", p))
			if out != "denied\n" {
				t.Errorf("write to %s: %q", p, out)
			}
		}
		if out := mustRun(t, sb, "(mkdir /usr/newdir) 2>/dev/null && echo WROTE || echo denied"); out != "denied\n" {
			t.Errorf("mkdir in /usr: %q", out)
		}
	})
	t.Run("Secrets", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		out := mustRun(t, sb, "cat /etc/shadow /etc/gshadow 2>&1; cat /proc/1/environ 2>&1; cat /proc/*/environ 2>&1; env; true")
		if strings.Contains(out, "root:") {
			t.Errorf("/etc/shadow readable: %q", out)
		}
		if strings.Contains(out, canary) {
			t.Errorf("host environment visible inside the sandbox")
		}
	})
	t.Run("OtherSandboxes", func(t *testing.T) {
		a := newSandbox(t, tier, spec)
		b := newSandbox(t, tier, spec)
		secret := "secret-of-" + a.ID()
		mustRun(t, a, "echo "+secret+" > /workspace/secret; echo "+secret+" > /tmp/secret; exec sleep 1000 &")
		out := mustRun(t, b, "cat /workspace/secret /tmp/secret 2>&1; for p in /proc/[0-9]*; do cat $p/root/workspace/secret $p/root/tmp/secret $p/cmdline 2>/dev/null; done; ls /proc | grep -c '^[0-9]'; true")
		if strings.Contains(out, secret) {
			t.Fatalf("sandbox B sees sandbox A's files: %q", out)
		}
	})
	t.Run("HostLoopbackPort", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan struct{}, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
				accepted <- struct{}{}
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		sb := newSandbox(t, tier, spec)
		out := mustRun(t, sb, fmt.Sprintf(`python3 -c "
import socket
try:
    socket.create_connection(('127.0.0.1', %d), timeout=2); print('CONNECTED')
except OSError as e:
    print('refused', e)
"`, port))
		if strings.Contains(out, "CONNECTED") {
			t.Fatalf("sandbox reached a host loopback port: %q", out)
		}
		select {
		case <-accepted:
			t.Fatal("host listener accepted a connection from the sandbox")
		case <-time.After(100 * time.Millisecond):
		}
		// Loopback inside the sandbox still works.
		out = mustRun(t, sb, `python3 -c "
import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); print('loopback ok')
"`)
		if out != "loopback ok\n" {
			t.Fatalf("in-sandbox loopback: %q", out)
		}
	})
	t.Run("RawAndPacketSockets", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		out := mustRun(t, sb, `python3 -c "
import socket
for name, args in [('raw4', (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
                   ('raw6', (socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)),
                   ('packet', (socket.AF_PACKET, socket.SOCK_RAW, 0)),
                   ('packetdgram', (socket.AF_PACKET, socket.SOCK_DGRAM, 0))]:
    try:
        socket.socket(*args); print(name, 'OPENED')
    except OSError as e:
        print(name, 'blocked', e.errno)
"`)
		if strings.Contains(out, "OPENED") {
			t.Fatalf("raw/packet socket opened: %q", out)
		}
		t.Logf("%s", out)
	})
	t.Run("DangerousSyscalls", func(t *testing.T) {
		if runtime.GOARCH != "amd64" {
			t.Skip("syscall numbers in this test are for amd64")
		}
		sb := newSandbox(t, tier, spec)
		out := mustRun(t, sb, dangerousSyscallsScript)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				t.Errorf("bad line %q", line)
				continue
			}
			if f[1] != "-1" && opt.SentryEmulated[f[0]] {
				t.Logf("%s succeeded inside the tier's own kernel (emulated, reaches nothing on the host)", f[0])
			} else if f[1] != "-1" {
				t.Errorf("%s succeeded (ret %s)", f[0], f[1])
			} else if opt.StrictErrno && f[2] != "1" {
				t.Errorf("%s failed with errno %s, want EPERM", f[0], f[2])
			}
		}
		t.Logf("%s", out)
	})
	t.Run("SetuidBinaries", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		out := mustRun(t, sb, "ls -l /usr/bin/su /usr/bin/passwd 2>&1; (su -c id root </dev/null 2>&1; echo su-exit=$?); (passwd -S root 2>&1; true); grep -E 'NoNewPrivs|CapEff' /proc/self/status; id")
		if strings.Contains(out, "uid=0") {
			t.Fatalf("gained root: %q", out)
		}
		if strings.Contains(out, "NoNewPrivs") && !strings.Contains(out, "NoNewPrivs:\t1") {
			t.Fatalf("no_new_privs not set: %q", out)
		}
		if strings.Contains(out, "CapEff") && !strings.Contains(out, "CapEff:\t0000000000000000") {
			t.Fatalf("capabilities present: %q", out)
		}
	})
	t.Run("ProcEscapes", func(t *testing.T) {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		before := fileHash(t, exe)
		marker := filepath.Join(t.TempDir(), "host-marker")
		if err := os.WriteFile(marker, []byte("HOSTMARKER"), 0o644); err != nil {
			t.Fatal(err)
		}
		hostOnly := "" // a top-level host directory the template does not show
		for _, d := range []string{"var", "home", "root", "srv", "opt", "mnt", "boot"} {
			if _, err := os.Stat("/" + d); err == nil {
				hostOnly = d
				break
			}
		}
		sb := newSandbox(t, tier, spec)
		out := mustRun(t, sb, fmt.Sprintf(`
for p in /proc/[0-9]* /proc/self /proc/thread-self; do
  cat $p/root%[1]s 2>/dev/null
  [ -n "%[2]s" ] && [ -e "$p/root/%[2]s" ] && echo "HOSTROOT via $p"
  (echo x >> $p/exe) 2>/dev/null && echo "EXEWRITE via $p"
done
cat /proc/1/root/../../..%[1]s 2>/dev/null
true`, marker, hostOnly))
		if strings.Contains(out, "HOSTMARKER") || strings.Contains(out, "HOSTROOT") || strings.Contains(out, "EXEWRITE") {
			t.Fatalf("escape through /proc: %q", out)
		}
		if after := fileHash(t, exe); after != before {
			t.Fatal("host binary modified from inside the sandbox")
		}
	})
	t.Run("BackgroundDiesAtClose", func(t *testing.T) {
		sb := newSandbox(t, tier, spec)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		marker := "bgclose-" + sb.ID()
		// Detach as hard as a program can: new session, ignored signals,
		// double fork.
		mustRun(t, sb, "setsid sh -c 'trap \"\" TERM HUP INT; (while :; do sleep 1; done; echo "+marker+") &' >/dev/null 2>&1 </dev/null; true")
		if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "trap '' TERM; while :; do sleep 1; done; echo " + marker}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if len(hostPIDsWithMarker(marker)) == 0 && opt.AfterClose == nil {
			t.Log("marker not visible on the host (tier hides process command lines)")
		}
		if err := sb.Close(); err != nil {
			t.Fatal(err)
		}
		if pids := hostPIDsWithMarker(marker); len(pids) > 0 {
			t.Fatalf("processes survived Close: %v", pids)
		}
		if opt.AfterClose != nil {
			opt.AfterClose(t, sb)
		}
	})
}

// dangerousSyscallsScript calls each syscall with harmless arguments and
// prints "name ret errno".
const dangerousSyscallsScript = `python3 - <<'EOF'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
calls = {
  'mount': (165, b"none", b"/tmp", b"tmpfs", 0, 0),
  'umount2': (166, b"/workspace", 0),
  'pivot_root': (155, b"/tmp", b"/tmp"),
  'chroot': (161, b"/tmp"),
  'unshare_user': (272, 0x10000000),
  'unshare_mount': (272, 0x00020000),
  'unshare_net': (272, 0x40000000),
  'setns': (308, 0, 0),
  'init_module': (175, 0, 0, b""),
  'finit_module': (313, 0, b"", 0),
  'delete_module': (176, b"ext4", 0),
  'kexec_load': (246, 0, 0, 0, 0),
  'bpf': (321, 0, 0, 0),
  'keyctl': (250, 0, 0),
  'add_key': (248, b"user", b"k", b"v", 1, -4),
  'perf_event_open': (298, 0, 0, -1, -1, 0),
  'ptrace_traceme': (101, 0, 0, 0, 0),
  'ptrace_attach_1': (101, 16, 1, 0, 0),
  'reboot': (169, 0xfee1dead, 672274793, 0x4321fedc, 0),
  'swapon': (167, b"/tmp/x", 0),
  'userfaultfd': (323, 0),
  'open_by_handle_at': (304, 0, 0, 0),
  'settimeofday': (164, 0, 0),
  'clone_newuser': (56, 0x10000000 | 17, 0, 0, 0, 0),
  'io_uring_setup': (425, 1, 0),
}
def arg(a):
    return ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a)
for name, (nr, *args) in calls.items():
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[arg(a) for a in args])
    if r == 0 and name == 'clone_newuser':
        os._exit(0)  # child of a successful clone
    print(name, r if r < 0 else r, ctypes.get_errno())
EOF`

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
