//go:build linux

package gvisor

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

type dirImages map[string][]string

func (d dirImages) ImageNames() []string { return []string{"mini"} }
func (d dirImages) ImageLayers(name string) ([]string, error) {
	if l, ok := d[name]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("%q: %w", name, sandbox.ErrUnknownTemplate)
}

// An image template on gVisor: the root is the image (not the host's
// /etc), writable per sandbox, and the layer never changes.
func TestImageTemplateOverlay(t *testing.T) {
	tier := newTestTier(t)
	layer := filepath.Join(t.TempDir(), "layer")
	sandboxtest.MiniRootfs(t, layer)
	if err := os.Mkdir(filepath.Join(layer, "shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(layer, "shared"), 0o1777); err != nil {
		t.Fatal(err)
	}
	before := sandboxtest.TreeDigest(t, layer)
	tier.images = dirImages{"mini": {layer}}
	run := func(sb sandbox.Sandbox, cmd string) (string, int) {
		var out bytes.Buffer
		code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", cmd}}, &out, &out)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return out.String(), code
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
	if out, code := run(a, "cat /etc/os-release; test -e /etc/passwd && echo HOSTETC; echo w > /shared/f && cat /shared/f"); code != 0 ||
		!strings.Contains(out, "agentcloud-test-image") || strings.Contains(out, "HOSTETC") || !strings.Contains(out, "w\n") {
		t.Fatalf("image root: %d %q", code, out)
	}
	if out, code := run(b, "test -e /shared/f && echo LEAK; echo done"); code != 0 || out != "done\n" {
		t.Fatalf("another sandbox saw the write: %d %q", code, out)
	}
	bundle := a.(*container).bundle
	a.Close()
	if _, err := os.Stat(bundle); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bundle left behind: %v", err)
	}
	if after := sandboxtest.TreeDigest(t, layer); after != before {
		t.Fatal("the layer changed")
	}
}
