package sandboxtest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// RootfsTools are the host programs MiniRootfs copies.
var RootfsTools = []string{"sh", "cat", "ls", "id", "touch", "mkdir", "rm", "stat", "echo", "test", "sleep"}

// MiniRootfs fills dir with a small root filesystem made of host programs
// (RootfsTools) and the shared libraries ldd names for them, at their host
// paths, plus /bin, /etc/os-release and an empty /tmp. It is an image
// template's layer for tests that cannot download an image.
func MiniRootfs(t testing.TB, dir string) {
	t.Helper()
	MiniRootfsWith(t, dir, RootfsTools...)
}

// MiniRootfsWith is MiniRootfs with the host programs tools (skipping the
// test when one is missing).
func MiniRootfsWith(t testing.TB, dir string, tools ...string) {
	t.Helper()
	files := map[string]bool{}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s on this host: %v", tool, err)
		}
		p, err = filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = true
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			continue // static
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			for _, f := range strings.Fields(sc.Text()) {
				if strings.HasPrefix(f, "/") {
					files[f] = true
				}
			}
		}
	}
	for f := range files {
		copyFileTo(t, f, filepath.Join(dir, f))
		if real, err := filepath.EvalSymlinks(f); err == nil && real != f {
			copyFileTo(t, real, filepath.Join(dir, real))
		}
	}
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range tools {
		p, _ := exec.LookPath(tool)
		real, _ := filepath.EvalSymlinks(p)
		dst := filepath.Join(dir, "bin", tool)
		if _, err := os.Lstat(dst); err != nil {
			if err := os.Symlink(real, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "os-release"), []byte("ID=agentcloud-test-image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFileTo(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TreeDigest summarizes every path, mode, owner, size and modification
// time under dir, to check that nothing changed it.
func TreeDigest(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var uid, gid uint32
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = st.Uid, st.Gid
		}
		fmt.Fprintf(&b, "%s %v %d:%d %d %d\n", p, fi.Mode(), uid, gid, fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// AddProgram copies the host program at path to /bin/name of the root
// filesystem at dir, with the shared libraries ldd names for it.
func AddProgram(t testing.TB, dir, path, name string) {
	t.Helper()
	copyFileTo(t, path, filepath.Join(dir, "bin", name))
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		return // static
	}
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasPrefix(f, "/") {
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			continue
		}
		copyFileTo(t, f, filepath.Join(dir, f))
		if real, err := filepath.EvalSymlinks(f); err == nil && real != f {
			copyFileTo(t, real, filepath.Join(dir, real))
		}
	}
}
