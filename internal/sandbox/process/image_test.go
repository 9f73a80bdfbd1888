//go:build linux

package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

// dirImages is a fixed set of image templates for tier tests (the real
// store is package internal/sandbox/image, tested with this tier there).
type dirImages map[string][]string

func (d dirImages) ImageNames() []string { return []string{"mini"} }
func (d dirImages) ImageLayers(name string) ([]string, error) {
	if l, ok := d[name]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("%q: %w", name, sandbox.ErrUnknownTemplate)
}

func run(t *testing.T, sb sandbox.Sandbox, cmd string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", cmd}}, &out, &out)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return out.String(), code
}

// An image template's sandbox runs on its own writable overlay: writes
// work, never reach the layer, are not seen by another sandbox of the same
// template, and the host's /etc is not visible.
func TestImageTemplateOverlay(t *testing.T) {
	layer := filepath.Join(t.TempDir(), "layer")
	sandboxtest.MiniRootfs(t, layer)
	if err := os.Chmod(filepath.Dir(layer), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(layer, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(layer, "shared"), 0o1777); err != nil {
		t.Fatal(err)
	}
	before := sandboxtest.TreeDigest(t, layer)
	tier := newTestTier(t)
	tier.images = dirImages{"mini": {layer}}
	if got := tier.Templates(); len(got) != 2 || got[1] != "mini" {
		t.Fatalf("templates %v", got)
	}
	a, err := sandbox.Create(t.Context(), tier, "img-a", sandbox.Spec{Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sandbox.Create(t.Context(), tier, "img-b", sandbox.Spec{Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if out, code := run(t, a, "cat /etc/os-release; test -e /etc/passwd && echo HOSTETC; id -u"); code != 0 || !strings.Contains(out, "agentcloud-test-image") || strings.Contains(out, "HOSTETC") || !strings.Contains(out, "1000") {
		t.Fatalf("image root: code %d %q", code, out)
	}
	// The sandbox user writes where the image's modes allow: /tmp of the
	// image (the tmpfs), and a dir the image's root owns is refused.
	if out, code := run(t, a, "mkdir -p /workspace/x && echo hi > /workspace/x/f && cat /workspace/x/f"); code != 0 || out != "hi\n" {
		t.Fatalf("workspace write: %d %q", code, out)
	}
	if out, code := run(t, a, "touch /etc/new 2>&1"); code == 0 {
		t.Fatalf("sandbox user wrote a root-owned dir of the image: %q", out)
	}
	// A world-writable dir of the image is writable through the overlay.
	if out, code := run(t, a, "stat -c %u:%g:%a /etc"); code != 0 || out != "0:0:755\n" {
		t.Fatalf("owners inside: %d %q", code, out)
	}
	c, err := sandbox.Create(t.Context(), tier, "img-c", sandbox.Spec{Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if out, code := run(t, c, "echo w > /shared/f && cat /shared/f && rm /bin/cat.nope 2>/dev/null; echo ok"); code != 0 || out != "w\nok\n" {
		t.Fatalf("overlay write: %d %q", code, out)
	}
	if out, code := run(t, b, "test -e /shared/f && echo LEAK; echo done"); code != 0 || out != "done\n" {
		t.Fatalf("another sandbox saw the write: %d %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(layer, "shared", "f")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("write reached the layer: %v", err)
	}
	if after := sandboxtest.TreeDigest(t, layer); after != before {
		t.Fatal("the layer changed")
	}
	rw := c.(*box).rwDir
	c.Close()
	if _, err := os.Stat(rw); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("overlay dir left behind: %v", err)
	}
}
