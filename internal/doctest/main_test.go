package doctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

func TestMain(m *testing.M) {
	process.MaybeRunInit() // in-process daemons' process-tier sandboxes re-execute this binary
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot is the checkout this package is in.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repo root not found from %s", dir)
	}
	return dir
}

var (
	buildOnce sync.Once
	binDir    string // holds bin/agentcloud, built once per test binary
	binErr    error
)

// agentcloudBin builds ./cmd/agentcloud from this tree (once) and returns
// the path of the binary.
func agentcloudBin(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "agentcloud-doctest-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "bin", "agentcloud"), "./cmd/agentcloud")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/agentcloud: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "bin", "agentcloud")
}

// cleanEnv is this process's environment without the AGENTCLOUD_* settings
// a developer may have exported, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) > len("AGENTCLOUD_") && kv[:len("AGENTCLOUD_")] == "AGENTCLOUD_" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// lockFree reports whether no daemon holds the data dir's lock.
func lockFree(t testing.TB, data string) bool {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(data, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// killGroup stops a process group started with Setpgid.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
