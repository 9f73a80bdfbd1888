//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	uid        int
	body       string
	size       int64 // for a body of zeros, when body is ""
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o644, body: body}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, typ: tar.TypeSymlink, link: to, mode: 0o777}
}
func hardlink(name, to string) entry { return entry{name: name, typ: tar.TypeLink, link: to} }

func layerTar(t testing.TB, ents ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		size := int64(len(e.body))
		if e.body == "" && e.size > 0 {
			size = e.size
		}
		if e.typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid, Size: size, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			var body []byte
			if e.body != "" {
				body = []byte(e.body)
			} else {
				body = make([]byte, size)
			}
			if _, err := tw.Write(body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImageArchiveHostileClass feeds layers built to escape or abuse the
// unpacker. Each must be refused with ErrInvalid and a message naming the
// entry (or be defused, for setuid bits), and nothing may appear outside
// the layer's own directory.
func TestImageArchiveHostileClass(t *testing.T) {
	cases := []struct {
		name string
		ents []entry
		want string // substring of the error; "" means accepted
	}{
		{"dotdot", []entry{file("../escape", "x")}, "goes up out of the tree"},
		{"dotdot-inner", []entry{dir("a"), file("a/../../escape", "x")}, "goes up out of the tree"},
		{"absolute", []entry{file("/escape", "x")}, "absolute path"},
		{"symlink-then-write", []entry{symlink("lnk", "/outside"), file("lnk/escape", "x")}, "not a directory"},
		{"symlink-dotdot-then-write", []entry{symlink("lnk", "../../.."), file("lnk/escape", "x")}, "not a directory"},
		{"symlink-then-dir", []entry{symlink("lnk", "/outside"), dir("lnk/sub")}, "not a directory"},
		{"symlink-then-hardlink-through", []entry{symlink("lnk", "/outside"), hardlink("h", "lnk/secret")}, "not a directory"},
		{"hardlink-out-dotdot", []entry{hardlink("h", "../../../etc/shadow")}, "points out of the tree"},
		{"hardlink-out-absolute", []entry{hardlink("h", "/etc/shadow")}, "points out of the tree"},
		{"hardlink-to-symlink", []entry{symlink("s", "/etc/shadow"), hardlink("h", "s")}, "not a regular file"},
		{"hardlink-missing", []entry{hardlink("h", "nothing")}, "not a regular file"},
		{"char-device", []entry{{name: "dev/mem", typ: tar.TypeChar, mode: 0o666}}, "device node"},
		{"block-device", []entry{{name: "sda", typ: tar.TypeBlock, mode: 0o666}}, "device node"},
		{"owner-out-of-range", []entry{{name: "f", typ: tar.TypeReg, mode: 0o644, uid: 70000, body: "x"}}, "owners must be"},
		{"root-replaced", []entry{file(".", "x")}, "replaces the root"},
		{"whiteout-of-nothing", []entry{file(".wh.", "")}, "names nothing"},
		{"whiteout-dotdot", []entry{file("a/.wh...", "")}, "names nothing"},
		{"bomb", []entry{{name: "zeros", typ: tar.TypeReg, mode: 0o644, size: 2 << 20}}, "larger than its limit"},
		{"too-many-entries", manyEntries(50), "more entries than its limit"},
		{"setuid-stripped", []entry{{name: "su", typ: tar.TypeReg, mode: 0o4755, body: "x"}, {name: "sg", typ: tar.TypeReg, mode: 0o2755, body: "x"}}, ""},
		{"ok", []entry{dir("a"), file("a/f", "x"), symlink("a/l", "/etc/passwd"), hardlink("a/h", "a/f"), dir("t")}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dest := filepath.Join(base, "a", "b", "root")
			if err := os.MkdirAll(dest, 0o755); err != nil {
				t.Fatal(err)
			}
			b := &budget{bytes: 1 << 20, entries: 20}
			_, err := extractLayer(bytes.NewReader(layerTar(t, c.ents...)), dest, b)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			} else if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, c.want)
			}
			// Nothing outside dest.
			for _, p := range []string{"escape", "a/escape", "a/b/escape", "outside"} {
				if _, err := os.Lstat(filepath.Join(base, p)); err == nil {
					t.Fatalf("%s was created outside the layer", p)
				}
			}
			if _, err := os.Lstat("/outside"); err == nil {
				t.Fatal("/outside was created")
			}
			if c.name == "setuid-stripped" {
				for _, f := range []string{"su", "sg"} {
					fi, err := os.Stat(filepath.Join(dest, f))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 || fi.Mode().Perm() != 0o755 {
						t.Fatalf("%s mode %v: setuid/setgid kept", f, fi.Mode())
					}
				}
			}
		})
	}
}

func manyEntries(n int) []entry {
	var out []entry
	for i := range n {
		out = append(out, file("f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), "x"))
	}
	return out
}

// Whiteouts become what overlayfs reads: a 0/0 character device for a
// deleted name, an opaque xattr for a replaced dir.
func TestImageWhiteouts(t *testing.T) {
	dest := t.TempDir()
	_, err := extractLayer(bytes.NewReader(layerTar(t, dir("a"), file("a/.wh.x", ""), dir("b"), file("b/.wh..wh..opq", ""), file("b/new", "n"))), dest, &budget{bytes: 1 << 20, entries: 100})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dest, "a", "x"))
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("a/x: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(dest, "b", ".wh..wh..opq")); err == nil {
		t.Fatal("the opaque marker was written as a file")
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dest, "b"), "user.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr: %q %v", buf[:n], err)
	}
}

// FuzzExtractLayer: no archive makes the unpacker panic or write outside
// its directory.
func FuzzExtractLayer(f *testing.F) {
	f.Add(layerTar(f, dir("a"), file("a/f", "x"), symlink("a/l", "/etc"), hardlink("a/h", "a/f")))
	f.Add(layerTar(f, symlink("lnk", "/outside"), file("lnk/escape", "x")))
	f.Add(layerTar(f, file("../escape", "x")))
	f.Add(layerTar(f, dir("b"), file("b/.wh..wh..opq", ""), file("b/.wh.x", "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		dest := filepath.Join(base, "root")
		if err := os.Mkdir(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		_, _ = extractLayer(bytes.NewReader(data), dest, &budget{bytes: 1 << 20, entries: 200})
		ents, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Fatalf("entries outside the layer: %v", ents)
		}
	})
}
