//go:build linux

package gvisor

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

func newTestTier(t testing.TB) *Tier {
	t.Helper()
	if err := Available(""); err != nil {
		t.Skipf("gvisor tier unavailable: %v", err)
	}
	if testing.Short() {
		t.Skip("gvisor tests start runsc sandboxes (slow); skipped with -short")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("runsc platform %s, oci seccomp %v", tier.Platform(), tier.ociSeccomp)
	t.Cleanup(func() { tier.Close() })
	return tier
}

func TestConformance(t *testing.T) {
	sandboxtest.Conformance(t, newTestTier(t), sandboxtest.Options{})
}

func TestHostile(t *testing.T) {
	// runsc applies the OCI seccomp filter to the container's first process
	// but not to `runsc exec` processes in this runsc build, so namespace
	// and ptrace calls reach the sentry, which emulates them in its own
	// kernel; a memory hog gets the whole sentry killed by the host, which
	// the sandbox then reports (ErrFailed). Both stay contained.
	sandboxtest.Hostile(t, newTestTier(t), sandboxtest.Options{
		MemoryHogMayFail: true,
		SentryEmulated: map[string]bool{"unshare_user": true, "unshare_mount": true, "unshare_net": true,
			"ptrace_traceme": true, "clone_newuser": true},
	})
}

func BenchmarkCreate(b *testing.B)     { sandboxtest.BenchCreate(b, newTestTier(b)) }
func BenchmarkExecPython(b *testing.B) { sandboxtest.BenchExec(b, newTestTier(b)) }
func BenchmarkPoolClaim(b *testing.B)  { sandboxtest.BenchPoolClaim(b, newTestTier(b), 2) }

// BenchmarkHostPython is the baseline: the same python3 run on the host.
func BenchmarkHostPython(b *testing.B) { sandboxtest.BenchHostExec(b) }

// BenchmarkExecPythonRunscExec is BenchmarkExecPython without the exec
// agent (one runsc exec per command, as before it), for a side-by-side.
func BenchmarkExecPythonRunscExec(b *testing.B) {
	tier := newTestTier(b)
	tier.noAgent = true
	sandboxtest.BenchExec(b, tier)
}
func BenchmarkPoolCreateExecPython(b *testing.B) {
	sandboxtest.BenchPoolCreateExec(b, newTestTier(b), 2)
}

// TestSocketFamilyAllowlistClass: the sentry opens no socket family beyond
// those the process tier allows (its errnos differ). Its NETLINK_KOBJECT_UEVENT
// socket is the sentry's own and never carries a host event.
func TestSocketFamilyAllowlistClass(t *testing.T) {
	sandboxtest.SocketFamilies(t, newTestTier(t), sandboxtest.Options{SentryEmulated: map[string]bool{"netlink_uevent": true}})
}

// TestSandboxFailureClass: full disks never take a gVisor sandbox down, and
// one whose sandbox kernel died (as under the host's OOM killer) says why on
// every operation (ErrFailed).
func TestSandboxFailureClass(t *testing.T) {
	sandboxtest.Failure(t, newTestTier(t), sandboxtest.Options{KillInit: func(t *testing.T, sb sandbox.Sandbox) {
		if err := syscall.Kill(sb.(*container).sandboxPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}})
}

// newTestManager starts a sandbox manager over tier alone, closed at the
// end of the test.
func newTestManager(t testing.TB, tier *Tier) *sandbox.Manager {
	t.Helper()
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestTerminalClass: the shared terminal conformance, through the exec
// agent's pseudo-terminals.
func TestTerminalClass(t *testing.T) { sandboxtest.TerminalClass(t, newTestTier(t)) }
