package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const testManifest = `{"name":"t","entry":"index.js"}`

// minimal returns a valid file set plus extra files.
func minimal(extra map[string]string) map[string][]byte {
	files := map[string][]byte{ManifestName: []byte(testManifest), "index.js": []byte("export default {}")}
	for p, c := range extra {
		files[p] = []byte(c)
	}
	return files
}

func TestFromFiles(t *testing.T) {
	cases := []struct {
		name  string
		files map[string][]byte
		err   error
		text  string
	}{
		{name: "ok", files: minimal(map[string]string{"lib/util.js": "x", "data/empty": ""})},
		{name: "no manifest", files: map[string][]byte{"index.js": nil}, err: ErrNoManifest, text: "add one"},
		{name: "nested manifest", files: map[string][]byte{"app/agent.json": []byte(testManifest)}, err: ErrNoManifest, text: "-C app ."},
		{name: "bad manifest", files: map[string][]byte{ManifestName: []byte(`{"name":"t"}`)}, err: ErrInvalidManifest, text: "entry: is required"},
		{name: "entry missing", files: map[string][]byte{ManifestName: []byte(testManifest), "main.js": nil}, err: ErrInvalidManifest,
			text: `entry: file "index.js" is not in the bundle; add the file, or point entry at one of: main.js (line 1, column 21)`},
		{name: "absolute", files: minimal(map[string]string{"/etc/passwd": ""}), err: ErrUnsafePath, text: "absolute"},
		{name: "dotdot", files: minimal(map[string]string{"a/../../x": ""}), err: ErrUnsafePath, text: "escape"},
		{name: "dot", files: minimal(map[string]string{"./x": ""}), err: ErrUnsafePath},
		{name: "empty elem", files: minimal(map[string]string{"a//x": ""}), err: ErrUnsafePath},
		{name: "trailing slash", files: minimal(map[string]string{"a/": ""}), err: ErrUnsafePath},
		{name: "backslash", files: minimal(map[string]string{`a\x`: ""}), err: ErrUnsafePath},
		{name: "control", files: minimal(map[string]string{"a\nb": ""}), err: ErrUnsafePath},
		{name: "bad utf8", files: minimal(map[string]string{"a\xffb": ""}), err: ErrUnsafePath},
		{name: "long path", files: minimal(map[string]string{strings.Repeat("a", MaxPathLen+1): ""}), err: ErrUnsafePath},
		{name: "empty path", files: minimal(map[string]string{"": ""}), err: ErrUnsafePath},
		{name: "file and dir", files: minimal(map[string]string{"lib": "", "lib/x.js": ""}), err: ErrDuplicatePath},
		{name: "too many files", files: manyFiles(MaxFiles - 1), err: ErrTooManyFiles},
		{name: "max files", files: manyFiles(MaxFiles - 2)},
		{name: "too large", files: minimal(map[string]string{"big": string(make([]byte, MaxTotalSize))}), err: ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := FromFiles(tc.files)
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if len(b.Files) != len(tc.files) || !strings.HasPrefix(b.Digest, "sha256:") || len(b.Digest) != 71 {
					t.Errorf("bundle: %d files, digest %q", len(b.Files), b.Digest)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if tc.text != "" && !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q lacks %q", err, tc.text)
			}
		})
	}
}

func manyFiles(extra int) map[string][]byte {
	files := minimal(nil)
	for i := range extra {
		files[fmt.Sprintf("f/%04d", i)] = nil
	}
	return files
}

func TestFromFilesCopies(t *testing.T) {
	files := minimal(nil)
	b, err := FromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	files["index.js"][0] = 'X'
	files["new"] = nil
	if b.Files["index.js"][0] == 'X' || b.Files["new"] != nil || digest(b.Files) != b.Digest {
		t.Error("bundle shares memory with the caller's map")
	}
}

func TestDigest(t *testing.T) {
	a := minimal(map[string]string{"x": "1", "y/z": "22"})
	b := minimal(map[string]string{"y/z": "22", "x": "1"})
	if digest(a) != digest(b) {
		t.Error("digest depends on insertion order")
	}
	// Moving bytes between a path and its contents, or between files,
	// changes the digest: lengths are part of the encoding.
	for _, other := range []map[string][]byte{
		minimal(map[string]string{"x": "12", "y/z": "2"}),
		minimal(map[string]string{"x1": "", "y/z": "22"}),
		minimal(map[string]string{"x": "1", "y/z": "22", "e": ""}),
	} {
		if digest(other) == digest(a) {
			t.Errorf("collision between %v and %v", a, other)
		}
	}
	// The encoding is fixed (this value was also computed independently
	// from the package doc): a change to it must be deliberate.
	const want = "sha256:2044bad5f73a91e6bf18f220d7e425fa614c464f8832ad7f2a34085f5745dcea"
	if got := digest(map[string][]byte{"a": []byte("b")}); got != want {
		t.Logf("digest of {a: b} = %s", got)
		t.Errorf("canonical encoding changed; update the package doc and bump %q", strings.TrimSpace(digestDomain))
	}
}

func TestIteration(t *testing.T) {
	b, err := FromFiles(minimal(map[string]string{"b": "1", "a/c": "22", "Z": ""}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Z", "a/c", ManifestName, "b", "index.js"}
	if got := b.Paths(); !slices.Equal(got, want) {
		t.Errorf("Paths() = %q, want %q", got, want)
	}
	var got []string
	for p := range b.All() {
		got = append(got, p)
		if p == "a/c" {
			break
		}
	}
	if !slices.Equal(got, want[:2]) {
		t.Errorf("All() with break = %q", got)
	}
	if b.Size() != int64(3+len(testManifest)+len("export default {}")) || string(b.EntryFile()) != "export default {}" || b.Name != "t" {
		t.Errorf("Size() = %d, EntryFile() = %q", b.Size(), b.EntryFile())
	}
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		ManifestName: testManifest, "index.js": "export default {}", "lib/a.js": "a",
		".git/HEAD": "ref", "node_modules/x/index.js": "x", "lib/node_modules/y.js": "y", ".env.example": "K=",
	})
	b, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".env.example", ManifestName, "index.js", "lib/a.js"}
	if !slices.Equal(b.Paths(), want) {
		t.Errorf("paths %q, want %q", b.Paths(), want)
	}

	// Mode and mtime do not change the digest; the same files from a map
	// give the same digest.
	if err := os.Chmod(filepath.Join(dir, "lib/a.js"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "index.js"), time.Now(), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	b2, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := FromFiles(b.Files)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Digest != b.Digest || fb.Digest != b.Digest {
		t.Errorf("digests differ: %s %s %s", b.Digest, b2.Digest, fb.Digest)
	}
}

func TestLoadDirErrors(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		err   error
	}{
		{"symlink to file", func(t *testing.T, dir string) {
			if err := os.Symlink("index.js", filepath.Join(dir, "link.js")); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"symlink escaping", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"fifo", func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, "pipe")) }, ErrNotRegular},
		{"too large", func(t *testing.T, dir string) {
			writeTree(t, dir, map[string]string{"big": string(make([]byte, MaxTotalSize))})
		}, ErrTooLarge},
		{"no manifest", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, ManifestName)) }, ErrNoManifest},
		{"bad name", func(t *testing.T, dir string) { writeTree(t, dir, map[string]string{`a\b`: ""}) }, ErrUnsafePath},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{ManifestName: testManifest, "index.js": ""})
			tc.setup(t, dir)
			_, err := LoadDir(dir)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
	if _, err := LoadDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: got %v", err)
	}
}

func TestLoadFS(t *testing.T) {
	ok := func() fstest.MapFS {
		return fstest.MapFS{ManifestName: {Data: []byte(testManifest)}, "index.js": {}, "node_modules/x": {}}
	}
	b, err := LoadFS(ok())
	if err != nil || !slices.Equal(b.Paths(), []string{ManifestName, "index.js"}) {
		t.Fatalf("LoadFS: %v", err)
	}

	many := ok()
	for i := range MaxFiles - 1 {
		many[fmt.Sprintf("f/%d", i)] = &fstest.MapFile{}
	}
	if _, err := LoadFS(many); !errors.Is(err, ErrTooManyFiles) {
		t.Errorf("too many files: got %v", err)
	}
	link := ok()
	link["l"] = &fstest.MapFile{Data: []byte("index.js"), Mode: fs.ModeSymlink}
	if _, err := LoadFS(link); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: got %v", err)
	}
	dev := ok()
	dev["null"] = &fstest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice}
	if _, err := LoadFS(dev); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "device") {
		t.Errorf("device: got %v", err)
	}
}

// tarEntry is one entry of a test archive; Typeflag defaults to a file.
type tarEntry struct {
	hdr  tar.Header
	body string
	// cut ends the archive right after this entry's header, as a
	// truncated upload would.
	cut bool
}

func file(name, body string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body: body}
}

func makeTarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if e.cut {
			zw.Close()
			return buf.Bytes()
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var okEntries = []tarEntry{file(ManifestName, testManifest), file("index.js", "export default {}")}

func with(extra ...tarEntry) []tarEntry { return append(slices.Clone(okEntries), extra...) }

type tarCase struct {
	name    string
	entries []tarEntry
	raw     []byte // used instead of entries when set
	mangle  func([]byte) []byte
	err     error
	paths   []string
}

func tarCases() []tarCase {
	return []tarCase{
		{name: "ok", entries: with(file("lib/a.js", "a")), paths: []string{ManifestName, "index.js", "lib/a.js"}},
		{name: "dot slash and dirs", entries: []tarEntry{
			{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}},
			file("./agent.json", testManifest), file("./index.js", ""),
			{hdr: tar.Header{Name: "./lib/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}}},
		}, paths: []string{ManifestName, "index.js"}},
		{name: "skips git and node_modules", entries: with(file(".git/HEAD", "x"), file("node_modules/a/b.js", "x"),
			tarEntry{hdr: tar.Header{Name: "node_modules/l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}),
			paths: []string{ManifestName, "index.js"}},
		{name: "tar slip", entries: with(file("../evil.sh", "x")), err: ErrUnsafePath},
		{name: "tar slip nested", entries: with(file("lib/../../evil.sh", "x")), err: ErrUnsafePath},
		{name: "absolute", entries: with(file("/etc/cron.d/x", "x")), err: ErrUnsafePath},
		{name: "symlink", entries: with(tarEntry{hdr: tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}}), err: ErrNotRegular},
		{name: "hard link", entries: with(tarEntry{hdr: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "index.js"}}), err: ErrNotRegular},
		{name: "char device", entries: with(tarEntry{hdr: tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}), err: ErrNotRegular},
		{name: "block device", entries: with(tarEntry{hdr: tar.Header{Name: "sda", Typeflag: tar.TypeBlock}}), err: ErrNotRegular},
		{name: "fifo", entries: with(tarEntry{hdr: tar.Header{Name: "p", Typeflag: tar.TypeFifo}}), err: ErrNotRegular},
		{name: "duplicate", entries: with(file("index.js", "again")), err: ErrDuplicatePath},
		{name: "file and dir", entries: with(file("lib", ""), file("lib/a.js", "")), err: ErrDuplicatePath},
		{name: "no manifest", entries: []tarEntry{file("index.js", "")}, err: ErrNoManifest},
		{name: "wrapped in a dir", entries: []tarEntry{file("hello/agent.json", testManifest), file("hello/index.js", "")}, err: ErrNoManifest},
		{name: "bad manifest", entries: []tarEntry{file(ManifestName, "{"), file("index.js", "")}, err: ErrInvalidManifest},
		{name: "too large", entries: with(file("a", string(make([]byte, 1<<20))),
			tarEntry{hdr: tar.Header{Name: "b", Typeflag: tar.TypeReg, Size: MaxTotalSize - 1<<20}, cut: true}), err: ErrTooLarge},
		{name: "truncated", entries: with(tarEntry{hdr: tar.Header{Name: "b", Typeflag: tar.TypeReg, Size: 10}, cut: true}), err: ErrInvalidArchive},
		{name: "bad gzip checksum", entries: okEntries, err: ErrInvalidArchive, mangle: func(b []byte) []byte {
			b = slices.Clone(b)
			b[len(b)-8] ^= 1
			return b
		}},
		{name: "trailing bytes ignored", entries: okEntries, paths: []string{ManifestName, "index.js"}, mangle: func(b []byte) []byte {
			return append(slices.Clone(b), "\x00\x00junk"...)
		}},
		{name: "not gzip", raw: []byte("agent.json"), err: ErrInvalidArchive},
		{name: "empty input", raw: []byte{}, err: ErrInvalidArchive},
		{name: "gzip of garbage", raw: gz([]byte(strings.Repeat("garbage!", 200))), err: ErrInvalidArchive},
		{name: "empty tar", entries: []tarEntry{}, err: ErrNoManifest},
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestLoadTarGz(t *testing.T) {
	for _, tc := range tarCases() {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.raw
			if data == nil {
				data = makeTarGz(t, tc.entries...)
			}
			if tc.mangle != nil {
				data = tc.mangle(data)
			}
			b, err := LoadTarGz(bytes.NewReader(data))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Paths(), tc.paths) {
				t.Errorf("paths %q, want %q", b.Paths(), tc.paths)
			}
		})
	}
}

func TestLoadTarGzTooManyFiles(t *testing.T) {
	entries := slices.Clone(okEntries)
	for i := range MaxFiles {
		entries = append(entries, file(fmt.Sprintf("f/%d", i), ""))
	}
	if _, err := LoadTarGz(bytes.NewReader(makeTarGz(t, entries...))); !errors.Is(err, ErrTooManyFiles) {
		t.Errorf("got %v", err)
	}
}

func TestLoadTarGzBomb(t *testing.T) {
	// Skipped entries still have to be decompressed: their size is bounded
	// too. The bound is lowered so the test stays fast.
	defer func(n int64) { maxArchiveBytes = n }(maxArchiveBytes)
	maxArchiveBytes = 1 << 20
	entries := slices.Clone(okEntries)
	for i := range 4 {
		entries = append(entries, file(fmt.Sprintf(".git/objects/%d", i), string(make([]byte, 512<<10))))
	}
	data := makeTarGz(t, entries...)
	_, err := LoadTarGz(bytes.NewReader(data))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("got %v", err)
	}
}

func TestTarGzRoundTrip(t *testing.T) {
	b, err := FromFiles(minimal(map[string]string{
		"lib/a.js": "a", "empty": "", strings.Repeat("long/", 40) + "name.js": "long", "ünïcode.txt": "ü",
	}))
	if err != nil {
		t.Fatal(err)
	}
	out1, err := b.TarGz()
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := b.TarGz()
	if !bytes.Equal(out1, out2) {
		t.Error("TarGz is not deterministic")
	}
	b2, err := LoadTarGz(bytes.NewReader(out1))
	if err != nil {
		t.Fatal(err)
	}
	if b2.Digest != b.Digest || !reflect.DeepEqual(b2.Manifest, b.Manifest) || !maps.EqualFunc(b.Files, b2.Files, bytes.Equal) {
		t.Errorf("round trip changed the bundle")
	}
	// The archive holds regular files only, in path order, with no
	// times, owners or modes that depend on the machine.
	tr := tar.NewReader(mustGunzip(t, out1))
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, hdr.Name)
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o644 || hdr.ModTime.Unix() != 0 || hdr.Uid != 0 || hdr.Uname != "" {
			t.Errorf("header %+v", hdr)
		}
	}
	if !slices.Equal(names, b.Paths()) {
		t.Errorf("archive order %q, want %q", names, b.Paths())
	}
}

func mustGunzip(t *testing.T, data []byte) *gzip.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}
