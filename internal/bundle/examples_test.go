package bundle

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// examplesDir holds the example bundles; loading each one here keeps them
// from rotting as the manifest rules change.
const examplesDir = "../../examples"

func exampleDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) < 4 {
		t.Fatalf("found %d examples in %s, want at least 4", len(dirs), examplesDir)
	}
	return dirs
}

func TestExamplesLoad(t *testing.T) {
	for _, name := range exampleDirs(t) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(examplesDir, name)
			b, err := LoadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if b.Manifest.Name != name {
				t.Errorf("manifest name %q, want the directory name %q", b.Manifest.Name, name)
			}
			if b.Manifest.Description == "" {
				t.Error("manifest has no description")
			}
			if _, ok := b.Files["README.md"]; !ok {
				t.Error("no README.md")
			}
			out, err := b.TarGz()
			if err != nil {
				t.Fatal(err)
			}
			b2, err := LoadTarGz(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if b2.Digest != b.Digest {
				t.Errorf("digest changed through tar.gz: %s != %s", b2.Digest, b.Digest)
			}
		})
	}
}

// TestExamplesRunInNode runs every example's handlers against an in-memory
// env (testdata/examples_smoke.mjs). Node is a dev tool, not a dependency
// of agentcloud, so the test skips without it; the isolate tests run the
// same code in QuickJS.
func TestExamplesRunInNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts node; skipped in -short mode")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "node is not installed")
	}
	abs, err := filepath.Abs(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "testdata/examples_smoke.mjs", abs).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
