//go:build linux

package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
)

// Build steps on the gVisor tier (a node without the process tier, or
// template create --tier gvisor): the steps run as root of the sandbox's
// own kernel with the build capabilities only (no CAP_SYS_ADMIN: mount is
// refused), write under /usr, chown, remove a base file and replace a
// base dir; the top layer carries all of it, and a sandbox of the built
// template runs as uid 1000 again and cannot write /usr. The host
// template refuses build mode.
func TestGVisorBuildStepsClass(t *testing.T) {
	t.Parallel() // its own store, tier and Manager
	if err := gvisor.Available(""); err != nil {
		t.Skipf("gvisor tier unavailable: %v", err)
	}
	if testing.Short() {
		t.Skip("starts runsc sandboxes")
	}
	s := openStore(t, Limits{})
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := gvisor.New(gvisor.Config{DataDir: dir, Images: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx := t.Context()
	buildBase(t, s, "built", "mount")
	base, _ := s.Get("built")
	tpl, err := s.RunSteps(ctx, "built", []string{
		"mkdir -p /usr/local/lib && echo hi > /usr/local/lib/x && chown 5:5 /usr/local/lib/x",
		"rm /data/drop && rm -rf /data/gone && mkdir /data/gone && echo new > /data/gone/new",
		"id -u > /usr/builder-uid; while read -r k v; do [ \"$k\" = CapEff: ] && echo $v; done < /proc/self/status > /usr/builder-caps; true",
		"mkdir -p /mnt/m && mount -t tmpfs none /mnt/m 2>/dev/null && echo mounted > /usr/mount || true; rm -r /mnt",
	}, BuildOptions{Sandboxes: m, Spec: sandbox.Spec{Tier: sandbox.TierGVisor}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tpl.Layers) != 2 || tpl.Layers[0] != base.Layers[0] || tpl.Bytes <= base.Bytes {
		t.Fatalf("built template %+v from %+v", tpl, base)
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("%d sandboxes left after the build", n)
	}
	// A sandbox of it on the gVisor tier: the steps' writes, the build
	// user and its capabilities (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3,
	// FSETID 4, KILL 5, SETGID 6, SETUID 7: 0xfb), and no mount.
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor, Template: "built"})
	if err != nil {
		t.Fatal(err)
	}
	got := sh(t, sb, "cat /usr/local/lib/x; stat -c %u:%g /usr/local/lib/x; echo $(ls /data) / $(ls /data/gone); cat /usr/builder-uid /usr/builder-caps; test -e /usr/mount && echo MOUNTED; id -u; touch /usr/y 2>/dev/null || echo denied")
	if want := "hi\n5:5\ngone keep / new\n0\n00000000000000fb\n1000\ndenied\n"; got != want {
		t.Fatalf("sandbox on the built template: %q, want %q", got, want)
	}
	if err := m.Delete(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	// The host template has no layer to build: refused, nothing left.
	_, err = m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor, Build: true})
	if err == nil || !strings.Contains(err.Error(), "needs an image template") {
		t.Fatalf("build mode on the host template: %v", err)
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("%d sandboxes left", n)
	}
}
