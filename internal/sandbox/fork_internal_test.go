package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestForkDiskExhaustion: copies that would not fit the host filesystem
// are refused before any is made (ErrDiskLimit naming the sizes), on a
// 16 MiB tmpfs standing in for a full disk.
func TestForkDiskExhaustion(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("forktest", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	ws := filepath.Join(dir, "ws")
	if err := os.MkdirAll(filepath.Join(ws, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "d", "f"), make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := checkFreeSpace(ws, dir, 2); err != nil {
		t.Fatalf("two copies of 4 MiB on 12 MiB free: %v", err)
	}
	for _, n := range []int{3, 4, MaxForks} {
		if err := checkFreeSpace(ws, dir, n); !errors.Is(err, ErrDiskLimit) {
			t.Fatalf("%d copies of 4 MiB on 12 MiB free: %v", n, err)
		}
	}
	// copyTree keeps the tree, modes and symlinks, and skips what is not a
	// file (a fifo).
	if err := os.Symlink("d/f", filepath.Join(ws, "l")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(ws, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "copy")
	if err := os.Mkdir(to, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(ws, to); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(to, "l")); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("copied link: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(to, "fifo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("fifo copied: %v", err)
	}
	// A copy that runs out of space fails cleanly (ENOSPC), not silently.
	if err := copyTree(ws, filepath.Join(dir, "copy")); err == nil {
		t.Fatal("copy over an existing tree succeeded")
	}
}

// TestForkLayerNameClass: a "lower" file that does not name a layer this
// package made (a path, a traversal, another length) points nowhere, and a
// data directory whose path would break the overlay options is not
// layered.
func TestForkLayerNameClass(t *testing.T) {
	m := &Manager{cfg: ManagerConfig{Dir: "/data/sandboxes"}}
	good := "l-0123456789abcdef01234567"
	if got := m.layerPath(good); got != "/data/sandboxes/.layers/"+good {
		t.Fatalf("layerPath(%q) = %q", good, got)
	}
	for _, bad := range []string{"", "l-", "../../etc", "l-../../../../etc/passwd", "l-0123456789abcdef0123456/",
		"l-0123456789abcdef0123.567", "x-0123456789abcdef01234567", "/etc", good + "0",
		"l-0123456789abcdef0,lower", "l-0123456789ABCDEF01234567", "l-0123456789abcdef0123456="} {
		if got := m.layerPath(bad); got != "" {
			t.Fatalf("layerPath(%q) = %q, want none", bad, got)
		}
	}
	if err := m.mountWorkspace(t.TempDir(), "../../etc"); err == nil {
		t.Fatal("mounted a workspace over a path that is not a layer")
	}
	for _, dir := range []string{"/a,upperdir=/etc", "/a:b", `/a\b`, ""} {
		if (&Manager{cfg: ManagerConfig{Dir: dir}}).canLayer() {
			t.Fatalf("Dir %q can hold layers", dir)
		}
	}
}
