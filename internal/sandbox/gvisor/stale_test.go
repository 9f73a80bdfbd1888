//go:build linux

package gvisor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestStaleContainersRemovedClass: a tier whose daemon died (its root lock
// released, its sandboxes left running) is cleaned by the next tier on the
// same data directory: the sandbox's processes, its runsc state, its
// cgroups and its bundle (mounts first) are gone. A second live tier on
// one root removes nothing of the first's.
func TestStaleContainersRemovedClass(t *testing.T) {
	dead := newTestTier(t)
	dataDir := filepath.Dir(filepath.Dir(dead.stateDir))
	sb, err := sandbox.Create(t.Context(), dead, "stale", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	c := sb.(*container)
	pidB, err := os.ReadFile(filepath.Join(c.bundle, "sandbox.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidB)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("sandbox pid %q not running", pidB)
	}
	cgroup := filepath.Join("/sys/fs/cgroup/memory/agentcloud-gvisor", c.cid)
	if _, err := os.Stat(cgroup); err != nil {
		t.Fatalf("no cgroup for the live sandbox: %v", err)
	}

	// A second live tier on the same root leaves the first's sandbox alone.
	shared, err := New(Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	_ = shared.Close()
	if syscall.Kill(pid, 0) != nil {
		t.Fatal("a tier sharing a live root killed its sandbox")
	}

	// The daemon dies: the lock goes with it, the sandbox stays.
	atomicfile.Unlock(dead.lock)
	dead.lock = nil
	next, err := New(Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if st := procState(pid); st != "" && st != "Z" {
		t.Errorf("the dead daemon's sandbox (pid %d) still runs: state %s", pid, st)
	}
	if out, err := next.run(t.Context(), "list", "-quiet"); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("runsc list after the cleanup: %q %v", out, err)
	}
	for _, ctrl := range cgroupControllers {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctrl, "agentcloud-gvisor", c.cid)); err == nil {
			t.Errorf("cgroup %s/agentcloud-gvisor/%s left", ctrl, c.cid)
		}
	}
	if _, err := os.Stat(c.bundle); !os.IsNotExist(err) {
		t.Errorf("bundle left: %v", err)
	}
}

// procState is pid's state letter ("Z" for a zombie), "" if it is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	st, _, _ := strings.Cut(rest, " ")
	return st
}

// TestDeadDaemonStateDirClass: the daemon's tier lives in a per-process
// state directory; after kill -9 the next daemon's process.NewStateDir
// ends the runsc processes running from the dead one's directory and,
// through RemoveLeftovers, removes their cgroups, then the directory.
func TestDeadDaemonStateDirClass(t *testing.T) {
	newTestTier(t) // skips where the tier cannot run
	// A short parent: the sandboxes' socket paths live below it.
	parent, err := os.MkdirTemp("", "gv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, fmt.Sprintf("agentcloud-sandbox-%d-dead", gone.Process.Pid))
	if err := os.Mkdir(dataDir, 0o711); err != nil {
		t.Fatal(err)
	}
	dead, err := New(Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dead.Close() })
	sb, err := sandbox.Create(t.Context(), dead, "left", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	c := sb.(*container)
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids/agentcloud-gvisor", c.cid)); err != nil {
		t.Fatalf("no cgroup for the live sandbox: %v", err)
	}
	dir, err := process.NewStateDir(parent, RemoveLeftovers)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, ctrl := range cgroupControllers {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctrl, "agentcloud-gvisor", c.cid)); err == nil {
			t.Errorf("cgroup %s/agentcloud-gvisor/%s left", ctrl, c.cid)
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("the dead daemon's state dir is still there: %v", err)
	}
}
