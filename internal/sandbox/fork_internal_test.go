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
