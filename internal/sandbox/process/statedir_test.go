//go:build linux

package process

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStateDirRemovesStaleClass: a new state directory removes those of
// daemons that died (named for a pid that no longer runs), ending what
// still runs from one and detaching what is mounted below it, and nothing
// else: not its own, not a live daemon's, not a name without a pid, not a
// file, not another program's directory.
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
	// A dead daemon's gVisor sandbox outlives it (runsc's processes are
	// not its children) and keeps mounts below its dir: both are ended.
	held := mk(fmt.Sprintf("agentcloud-sandbox-%d-held", deadPid))
	holder := exec.Command("sh", "-c", "sleep 60", filepath.Join(held, "gvisor", "state"))
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	mnt := filepath.Join(held, "process", "root")
	if err := unix.Mount("statedir-test", mnt, "tmpfs", 0, "size=4k"); err != nil {
		t.Logf("no mount case: %v", err)
	}
	defer func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) }()
	cleaned := map[string]bool{}
	dir, err := NewStateDir(parent, func(d string) { cleaned[d] = true })
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("new state dir: %v %v", fi, err)
	}
	if len(cleaned) != 2 || !cleaned[stale] || !cleaned[held] {
		t.Errorf("cleanups ran on %v, want the two stale dirs", cleaned)
	}
	for _, p := range []string{stale, held} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("a dead daemon's state dir %s is still there: %v", filepath.Base(p), err)
		}
	}
	if err := holder.Process.Signal(syscall.Signal(0)); err == nil && !isZombie(holder.Process.Pid) {
		t.Error("the process running from a dead daemon's dir was not ended")
	}
	if hasMountBelow(mountPoints(), held) {
		t.Error("a mount below a dead daemon's dir is still there")
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

// TestDetachMountsBelowSymlinkClass: a directory reached through a
// symlink has its mounts found and detached too (the mount table names
// real paths): before, none matched, the call said nothing was mounted,
// and a RemoveAll after it deleted through the mount.
func TestDetachMountsBelowSymlinkClass(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts need root")
	}
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real, link, src := filepath.Join(tmp, "real"), filepath.Join(tmp, "link"), filepath.Join(tmp, "src")
	for _, d := range []string{filepath.Join(real, "m"), src} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, filepath.Join(real, "m"), "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(real, "m"), unix.MNT_DETACH) })
	if !DetachMountsBelow(link) {
		t.Fatal("a mount is left below the symlinked dir")
	}
	if hasMountBelow(mountPoints(), real) {
		t.Fatal("the mount below the symlink's target is still there")
	}
	if err := os.RemoveAll(link + "/"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, "keep")); err != nil {
		t.Fatalf("the mounted directory's file: %v", err)
	}
}
