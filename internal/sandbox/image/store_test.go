//go:build linux

package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	process.MaybeRunInit()
	os.Exit(m.Run())
}

func openStore(t *testing.T, l Limits) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "templates"), l)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gzLayer(t testing.TB, tarBytes []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarBytes)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dirTar(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tarDir(dir, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dockerSave writes img as a `docker save` archive.
func dockerSave(t testing.TB, img v1.Image) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(p, name.MustParseReference("agentcloud/test:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	return p
}

// ociTar writes img as an OCI image layout packed in a tar.
func ociTar(t testing.TB, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "oci.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		fi, _ := d.Info()
		hdr, _ := tar.FileInfoHeader(fi, "")
		rel, _ := filepath.Rel(dir, path)
		hdr.Name = rel
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(path)
			_, err = tw.Write(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTier(t *testing.T, images sandbox.Images) *process.Tier {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process tier unavailable: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := process.New(process.Config{DataDir: dir, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}

func sh(t *testing.T, sb sandbox.Sandbox, cmd string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", cmd}}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("%s: code %d, %v: %s", cmd, code, err, out.String())
	}
	return out.String()
}

// Templates from a directory, a docker save archive and an OCI layout tar
// run on the process tier: layers shared by content address, whiteouts of
// an upper layer hide lower files, and each sandbox writes to its own
// overlay.
func TestImageTemplatesEndToEnd(t *testing.T) {
	rootfs := t.TempDir()
	sandboxtest.MiniRootfs(t, rootfs)
	if err := os.MkdirAll(filepath.Join(rootfs, "data", "gone"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"data/keep", "data/drop", "data/gone/x"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := openStore(t, Limits{})
	ctx := t.Context()
	if _, err := s.FromDir(ctx, "mini", rootfs); err != nil {
		t.Fatal(err)
	}
	top := layerTar(t, dir("data"), file("data/.wh.drop", ""), dir("data/gone"), file("data/gone/.wh..wh..opq", ""), file("data/gone/new", "new"), file("data/added", "added"))
	img, err := mutate.AppendLayers(empty.Image, gzLayer(t, dirTar(t, rootfs)), gzLayer(t, top))
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.FromOCI(ctx, "docker", dockerSave(t, img))
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.FromOCI(ctx, "oci", ociTar(t, img))
	if err != nil {
		t.Fatal(err)
	}
	mini, _ := s.Get("mini")
	if len(d.Layers) != 2 || d.Layers[0] != mini.Layers[0] || strings.Join(o.Layers, ",") != strings.Join(d.Layers, ",") {
		t.Fatalf("layers not shared by content: mini %v docker %v oci %v", mini.Layers, d.Layers, o.Layers)
	}
	if ents, _ := os.ReadDir(s.layersDir()); len(ents) != 2 {
		t.Fatalf("%d layer dirs, want 2", len(ents))
	}
	if _, err := s.FromDir(ctx, "mini", rootfs); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	for _, bad := range []string{"host", "Upper", "a/b", "", strings.Repeat("a", 64)} {
		if _, err := s.FromDir(ctx, bad, rootfs); err == nil {
			t.Fatalf("name %q accepted", bad)
		}
	}

	tier := newTier(t, s)
	for _, tpl := range []string{"docker", "oci"} {
		sb, err := sandbox.Create(ctx, tier, "sb-"+tpl, sandbox.Spec{Template: tpl})
		if err != nil {
			t.Fatal(err)
		}
		got := sh(t, sb, "cat /etc/os-release; echo $(ls /data /data/gone)")
		if !strings.Contains(got, "agentcloud-test-image") || !strings.Contains(got, "added") || strings.Contains(got, "drop") || strings.Contains(got, " x") || !strings.Contains(got, "new") {
			t.Fatalf("%s: whiteouts not applied: %q", tpl, got)
		}
		sb.Close()
	}

	// Delete: refused while in use, then removes the layers nobody else names.
	inUse := true
	s.InUse = func(string) bool { return inUse }
	if err := s.Delete("docker"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete in use: %v", err)
	}
	inUse = false
	for _, n := range []string{"docker", "oci"} {
		if err := s.Delete(n); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(s.layersDir()); len(ents) != 1 {
		t.Fatalf("%d layer dirs after deleting, want 1 (mini's)", len(ents))
	}
	if err := s.Delete("docker"); !errors.Is(err, sandbox.ErrUnknownTemplate) {
		t.Fatalf("delete twice: %v", err)
	}
	// Records survive a reopen.
	s2, err := Open(s.dir, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.ImageNames(); len(got) != 1 || got[0] != "mini" {
		t.Fatalf("after reopen: %v", got)
	}
}

// Archives over the limits, not images, or whose layers do not match
// their config are refused with ErrInvalid, and leave nothing behind.
func TestImageArchiveLimitsClass(t *testing.T) {
	small := layerTar(t, file("f", "x"))
	bomb := layerTar(t, entry{name: "zeros", typ: tar.TypeReg, mode: 0o644, size: 64 << 20}) // gzips to ~64 KiB
	three, _ := mutate.AppendLayers(empty.Image, gzLayer(t, small), gzLayer(t, layerTar(t, file("g", "y"))), gzLayer(t, layerTar(t, file("h", "z"))))
	bombImg, _ := mutate.AppendLayers(empty.Image, gzLayer(t, bomb))
	notTar := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(notTar, []byte("this is not an archive"), 0o644)
	stray := filepath.Join(t.TempDir(), "stray.tar")
	{
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "../../evil", Typeflag: tar.TypeReg, Mode: 0o644})
		tw.Close()
		os.WriteFile(stray, buf.Bytes(), 0o644)
	}
	cases := []struct {
		name, file, want string
	}{
		{"too-many-layers", dockerSave(t, three), "limit is 2"},
		{"bomb-docker", dockerSave(t, bombImg), "larger than its limit"},
		{"bomb-oci", ociTar(t, bombImg), "larger than its limit"},
		{"not-an-archive", notTar, "not a docker save archive or an OCI layout"},
		{"stray-entry", stray, "not part of an OCI image layout"},
		{"missing", filepath.Join(t.TempDir(), "nope.tar"), "no such file"},
		{"a-directory", t.TempDir(), "not a regular file"},
	}
	s := openStore(t, Limits{MaxLayers: 2, MaxBytes: 16 << 20})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.FromOCI(t.Context(), "x", c.file)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, c.want)
			}
			if n := s.ImageNames(); len(n) != 0 {
				t.Fatalf("templates after a refusal: %v", n)
			}
			for _, d := range []string{s.layersDir(), s.tmpDir()} {
				if ents, _ := os.ReadDir(d); len(ents) != 0 {
					t.Fatalf("%s holds %d entries after a refusal", d, len(ents))
				}
			}
		})
	}
}
