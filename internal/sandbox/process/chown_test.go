//go:build linux

package process

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

func idsOf(t *testing.T, p string) (int, int) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}

// TestChownWalkClass: chownWalk gives a tree to the sandbox's ids without
// ever following a symlink out of it: a symlink (to a file or a
// directory outside) is changed itself, whiteouts stay as they are with
// skipCharDevices, and a directory swapped for a symlink to the host while
// the walk runs (a process of the sandbox racing it) never hands a host
// file to the sandbox's uid.
func TestChownWalkClass(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const uid, gid = 123457, 123458
	base := t.TempDir()
	host := filepath.Join(base, "host")
	tree := filepath.Join(base, "tree")
	for _, d := range []string{host, filepath.Join(tree, "a", "b")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(host, "secret"), filepath.Join(tree, "a", "b", "f")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(host, "secret"), filepath.Join(tree, "to-file")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(tree, "to-dir")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(tree, "whiteout"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := chownWalk(tree, uid, gid, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tree, filepath.Join(tree, "a"), filepath.Join(tree, "a", "b"), filepath.Join(tree, "a", "b", "f"),
		filepath.Join(tree, "to-file"), filepath.Join(tree, "to-dir")} {
		if u, g := idsOf(t, p); u != uid || g != gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, u, g, uid, gid)
		}
	}
	if u, _ := idsOf(t, filepath.Join(tree, "whiteout")); u != 0 {
		t.Errorf("whiteout chowned to %d", u)
	}
	for _, p := range []string{host, filepath.Join(host, "secret")} {
		if u, g := idsOf(t, p); u != 0 || g != 0 {
			t.Fatalf("host file %s given to %d:%d through a symlink", p, u, g)
		}
	}

	// A racer swaps tree/sw between a directory with files and a symlink
	// to the host directory while the tree is chowned again and again.
	sw := filepath.Join(tree, "sw")
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			_ = os.RemoveAll(sw)
			if i%2 == 0 {
				_ = os.Symlink(host, sw)
				continue
			}
			_ = os.MkdirAll(filepath.Join(sw, "d"), 0o755)
			_ = os.WriteFile(filepath.Join(sw, "d", "g"), nil, 0o644)
		}
	})
	for i := 0; i < 2000; i++ {
		if err := chownWalk(tree, uid+i%2, gid, true); err != nil && !strings.Contains(err.Error(), "no such file") {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, p := range []string{host, filepath.Join(host, "secret")} {
		if u, g := idsOf(t, p); u != 0 || g != 0 {
			t.Fatalf("host file %s given to %d:%d while a directory was swapped for a symlink", p, u, g)
		}
	}
}

// TestChownWalkDepthClass: a tree nested deeper than maxChownDepth is
// refused with an error naming the limit instead of exhausting the
// daemon's descriptors or stack.
func TestChownWalkDepthClass(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	tree := t.TempDir()
	fd, err := unix.Open(tree, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range maxChownDepth + 2 { // relative to the last: no path limit
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = nfd
	}
	unix.Close(fd)
	err = chownWalk(tree, 123457, 123458, false)
	if err == nil || !strings.Contains(err.Error(), "deeper than") {
		t.Fatalf("chown of a %d-deep tree: %v, want the depth limit", maxChownDepth+2, err)
	}
}
