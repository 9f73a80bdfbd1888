package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCopyUpperClass: CopyUpper keeps what overlayfs reads from an upper
// dir (whiteouts, opaque markers, owners, modes, symlinks not followed)
// and nothing a sandbox could abuse: a real character device, a fifo and
// other xattrs are left out, set-id bits dropped.
func TestCopyUpperClass(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mknod, chown)")
	}
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(unix.Mknod(filepath.Join(src, "whiteout"), unix.S_IFCHR, 0))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o666))
	must(os.Mkdir(filepath.Join(src, "opaque"), 0o750))
	must(unix.Lsetxattr(filepath.Join(src, "opaque"), "user.overlay.opaque", []byte("y"), 0))
	must(unix.Lsetxattr(filepath.Join(src, "opaque"), "user.other", []byte("z"), 0))
	must(os.WriteFile(filepath.Join(src, "opaque", "f"), []byte("x"), 0o644))
	must(os.Chown(filepath.Join(src, "opaque", "f"), SandboxUID, SandboxGID))
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("x"), 0o755))
	must(os.Chmod(filepath.Join(src, "suid"), 0o4755))
	must(os.Symlink("/etc/shadow", filepath.Join(src, "link")))
	must(CopyUpper(src, dst))

	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "whiteout"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout: %+v %v", st, err)
	}
	for _, gone := range []string{"null", "fifo"} {
		if _, err := os.Lstat(filepath.Join(dst, gone)); !os.IsNotExist(err) {
			t.Errorf("%s copied: %v", gone, err)
		}
	}
	v := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dst, "opaque"), "user.overlay.opaque", v); err != nil || string(v[:n]) != "y" {
		t.Errorf("opaque marker: %q %v", v[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dst, "opaque"), "user.other", v); err == nil {
		t.Error("another xattr copied")
	}
	if fi, err := os.Stat(filepath.Join(dst, "opaque")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("dir mode: %v %v", fi.Mode(), err)
	}
	if err := unix.Lstat(filepath.Join(dst, "opaque", "f"), &st); err != nil || st.Uid != SandboxUID || st.Gid != SandboxGID {
		t.Errorf("owner: %d:%d %v", st.Uid, st.Gid, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "suid")); err != nil || fi.Mode()&os.ModeSetuid != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("set-id file: %v %v", fi.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "/etc/shadow" {
		t.Errorf("symlink: %q %v", target, err)
	}
}
