//go:build linux

package process

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStateDirRemovesStaleClass: a new state directory removes those of
// daemons that died (named for a pid that no longer runs) and nothing else:
// not its own, not a live daemon's, not one with a mount below it, not a
// name without a pid, not a file, not another program's directory.
func TestStateDirRemovesStaleClass(t *testing.T) {
	parent := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid
	mk := func(name string) string {
		p := filepath.Join(parent, name)
		if err := os.MkdirAll(filepath.Join(p, "process", "root"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(fmt.Sprintf("agentcloud-sandbox-%d-abc", deadPid))
	keep := []string{
		mk(fmt.Sprintf("agentcloud-sandbox-%d-own", os.Getpid())),
		mk("agentcloud-sandbox-1-live"),
		mk("agentcloud-sandbox-123456789"), // the old naming, no pid
		mk("agentcloud-sandbox-x-y"),
		mk("other-dir"),
	}
	file := filepath.Join(parent, fmt.Sprintf("agentcloud-sandbox-%d-file", deadPid))
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, file)
	mountedDir := mk(fmt.Sprintf("agentcloud-sandbox-%d-mnt", deadPid))
	if err := unix.Mount("statedir-test", filepath.Join(mountedDir, "process", "root"), "tmpfs", 0, "size=4k"); err == nil {
		t.Cleanup(func() { _ = unix.Unmount(filepath.Join(mountedDir, "process", "root"), unix.MNT_DETACH) })
		keep = append(keep, mountedDir)
	} else {
		t.Logf("no mount case (it is removed as stale): %v", err)
	}
	dir, err := NewStateDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("new state dir: %v %v", fi, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a dead daemon's state dir is still there: %v", err)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/end\04`: `/end\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
