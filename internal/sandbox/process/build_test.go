//go:build linux

package process

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

// probeEnv makes this test binary, started inside a sandbox, run
// buildProbe instead of the tests.
const probeEnv = "_AGENTCLOUD_TEST_BUILD_PROBE"

// buildProbe tries, from inside a sandbox, what build mode must allow and
// what it must refuse, and prints one "name=result" line per attempt.
func buildProbe() {
	res := func(name string, err error) {
		if err == nil {
			fmt.Printf("%s=ok\n", name)
		} else {
			fmt.Printf("%s=denied\n", name)
		}
	}
	fmt.Printf("uid=%d\n", os.Getuid())
	fmt.Printf("gid=%d\n", os.Getgid())
	groups, _ := os.Getgroups()
	fmt.Printf("groups=%v\n", groups)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"} {
				if v, ok := strings.CutPrefix(l, k+":"); ok {
					fmt.Printf("%s=%s\n", k, strings.TrimSpace(v))
				}
			}
		}
	}
	// Allowed in build mode: writes to the image's root-owned dirs, owners.
	res("write_usr", os.WriteFile("/usr/probe", []byte("x"), 0o644))
	res("chown", os.Lchown("/usr/probe", 5, 5))
	// Refused in every mode.
	res("mount", unix.Mount("none", "/mnt", "tmpfs", 0, ""))
	res("remount_root", unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND, ""))
	res("unshare_ns", unix.Unshare(unix.CLONE_NEWNS))
	res("unshare_user", unix.Unshare(unix.CLONE_NEWUSER))
	res("init_module", unix.InitModule(nil, ""))
	_, _, errno := unix.Syscall(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1, 0)
	res("ptrace_init", errnoErr(errno))
	res("raise_nofile", unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1 << 20, Max: 1 << 20}))
	res("raise_nproc", unix.Setrlimit(unix.RLIMIT_NPROC, &unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}))
	res("sethostname", unix.Sethostname([]byte("x")))
	res("mknod", unix.Mknod("/tmp/dev", unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	res("write_proc_sys", os.WriteFile("/proc/sys/kernel/hostname", []byte("x"), 0))
	res("write_sysrq", os.WriteFile("/proc/sysrq-trigger", []byte("h"), 0))
	_, err := os.ReadDir("/proc/1/root/")
	res("init_root", err)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	if err == nil {
		unix.Close(fd)
	}
	res("raw_socket", err)
	res("settime", unix.Settimeofday(&unix.Timeval{Sec: 1}))
	res("chroot", unix.Chroot("/tmp"))
	res("setuid_back", func() error { // drop to a service user, then try to come back
		if err := unix.Setresuid(100, 100, 100); err != nil {
			return err // ordinary sandbox: no SETUID
		}
		return unix.Setresuid(0, 0, 0)
	}())
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// probeResults runs the probe in sb and parses its lines.
func probeResults(t *testing.T, sb sandbox.Sandbox) map[string]string {
	t.Helper()
	var out strings.Builder
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "/bin/probe", Env: map[string]string{probeEnv: "1"}}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("probe: code %d err %v: %s", code, err, out.String())
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	return got
}

// Build mode (Spec.Build) runs as root of the sandbox's user namespace with
// BuildCaps only: it may install files anywhere in its own overlay and set
// their owners, and everything that would reach past the sandbox — mounts,
// namespaces, modules, tracing init, raising limits, raw network, the
// clock, device nodes, /proc/sys — is refused as in an ordinary sandbox,
// which still runs as uid 1000 with no capability. Layers and host files
// stay untouched; the processes' host uid is the sandbox's unprivileged one.
func TestBuildModeClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	layer := filepath.Join(t.TempDir(), "layer")
	sandboxtest.MiniRootfs(t, layer)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sandboxtest.AddProgram(t, layer, self, "probe")
	for _, d := range []string{"usr", "mnt"} {
		if err := os.MkdirAll(filepath.Join(layer, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(layer), 0o755); err != nil {
		t.Fatal(err)
	}
	before := sandboxtest.TreeDigest(t, layer)
	tier := newTestTier(t)
	tier.images = dirImages{"mini": {layer}}

	build, err := sandbox.Create(t.Context(), tier, "build-a", sandbox.Spec{Template: "mini", Build: true})
	if err != nil {
		t.Fatal(err)
	}
	defer build.Close()
	plain, err := sandbox.Create(t.Context(), tier, "plain-a", sandbox.Spec{Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	want := fmt.Sprintf("%016x", buildCapMask())
	b := probeResults(t, build)
	for k, v := range map[string]string{"uid": "0", "gid": "0", "groups": "[]", "CapEff": want, "CapPrm": want, "CapBnd": want, "CapAmb": "0000000000000000", "CapInh": "0000000000000000", "write_usr": "ok", "chown": "ok"} {
		if b[k] != v {
			t.Errorf("build sandbox %s = %q, want %q (all: %v)", k, b[k], v, b)
		}
	}
	p := probeResults(t, plain)
	for k, v := range map[string]string{"uid": "1000", "gid": "1000", "groups": "[]", "CapEff": "0000000000000000", "CapPrm": "0000000000000000", "write_usr": "denied", "chown": "denied"} {
		if p[k] != v {
			t.Errorf("ordinary sandbox %s = %q, want %q (all: %v)", k, p[k], v, p)
		}
	}
	for _, k := range []string{"mount", "remount_root", "unshare_ns", "unshare_user", "init_module", "ptrace_init", "raise_nofile", "raise_nproc", "sethostname", "mknod", "write_proc_sys", "write_sysrq", "init_root", "raw_socket", "settime", "chroot", "setuid_back"} {
		for name, got := range map[string]map[string]string{"build": b, "ordinary": p} {
			if got[k] != "denied" {
				t.Errorf("%s sandbox: %s = %q, want denied", name, k, got[k])
			}
		}
	}
	// The build's processes run under the sandbox's unprivileged host uid.
	bx := build.(*box)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", bx.pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(l, "Uid:"); ok {
			uid, _ := strconv.Atoi(strings.Fields(v)[0])
			if base := bx.hostUID - sbinit.SandboxUID; uid != base || uid == 0 {
				t.Errorf("build init's host uid %d, want the sandbox's base %d", uid, base)
			}
		}
	}
	// The write landed in the build sandbox's own upper dir only.
	if _, err := os.Stat(filepath.Join(bx.rwDir, "upper", "usr", "probe")); err != nil {
		t.Errorf("build write not in the upper dir: %v", err)
	}
	if after := sandboxtest.TreeDigest(t, layer); after != before {
		t.Error("the layer changed")
	}
}

func buildCapMask() uint64 {
	var m uint64
	for _, c := range sbinit.BuildCaps {
		m |= 1 << c
	}
	return m
}

// Build mode on the host template (no overlay of its own) is refused.
func TestBuildModeNeedsImage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	tier := newTestTier(t)
	sb, err := sandbox.Create(t.Context(), tier, "build-host", sandbox.Spec{Build: true})
	if err == nil {
		sb.Close()
		t.Fatal("build mode on the host template was accepted")
	}
	if !strings.Contains(err.Error(), "image template") {
		t.Fatalf("error %v", err)
	}
}
