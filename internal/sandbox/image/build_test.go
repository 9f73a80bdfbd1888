//go:build linux

package image

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

// buildBase makes template name from a small rootfs with files to remove.
func buildBase(t *testing.T, s *Store, name string, extra ...string) {
	t.Helper()
	rootfs := t.TempDir()
	sandboxtest.MiniRootfs(t, rootfs)
	for _, tool := range extra {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s on this host", tool)
		}
		sandboxtest.AddProgram(t, rootfs, p, tool)
	}
	chown, err := exec.LookPath("chown")
	if err != nil {
		t.Skip("no chown on this host")
	}
	sandboxtest.AddProgram(t, rootfs, chown, "chown")
	for _, tool := range []string{"chmod", "ln", "head"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s on this host", tool)
		}
		sandboxtest.AddProgram(t, rootfs, p, tool)
	}
	for _, d := range []string{"usr", "data/gone"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"data/keep", "data/drop", "data/gone/x"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.FromDir(t.Context(), name, rootfs); err != nil {
		t.Fatal(err)
	}
}

func newManager(t *testing.T, s *Store) *sandbox.Manager {
	t.Helper()
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{newTier(t, s)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Build steps run as root of the build sandbox's user namespace: a step
// writes under /usr and chowns, another removes a base file and replaces a
// base dir; the new template's top layer carries both (whiteout and opaque
// dir), and a sandbox on it sees them while running as uid 1000 again.
// A failing step stops the build with its step, exit code and output,
// leaves no template and no sandbox; so does a build out of time.
func TestTemplateBuildStepsClass(t *testing.T) {
	t.Parallel() // its own store, tier and Manager
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	s := openStore(t, Limits{})
	m := newManager(t, s)
	ctx := t.Context()
	buildBase(t, s, "built")
	base, _ := s.Get("built")
	tpl, err := s.RunSteps(ctx, "built", []string{
		"mkdir -p /usr/local/lib && echo hi > /usr/local/lib/x && chown 5:5 /usr/local/lib/x",
		"rm /data/drop && rm -rf /data/gone && mkdir /data/gone && echo new > /data/gone/new",
		"id -u > /usr/builder-uid",
	}, BuildOptions{Sandboxes: m})
	if err != nil {
		t.Fatal(err)
	}
	if len(tpl.Layers) != 2 || tpl.Layers[0] != base.Layers[0] || tpl.Bytes <= base.Bytes {
		t.Fatalf("built template %+v from %+v", tpl, base)
	}
	if got := s.ImageNames(); len(got) != 1 || got[0] != "built" {
		t.Fatalf("templates after the build: %v", got)
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("%d sandboxes left after the build", n)
	}
	sb, err := m.Create(ctx, "", sandbox.Spec{Template: "built"})
	if err != nil {
		t.Fatal(err)
	}
	got := sh(t, sb, "cat /usr/local/lib/x; stat -c %u:%g /usr/local/lib/x; echo $(ls /data) / $(ls /data/gone); cat /usr/builder-uid; id -u; touch /usr/y 2>/dev/null || echo denied")
	if want := "hi\n5:5\ngone keep / new\n0\n1000\ndenied\n"; got != want {
		t.Fatalf("sandbox on the built template: %q, want %q", got, want)
	}
	if err := m.Delete(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}

	// A failing step.
	buildBase(t, s, "bad")
	_, err = s.RunSteps(ctx, "bad", []string{"echo one", "echo boom >&2; exit 7", "touch /never"}, BuildOptions{Sandboxes: m})
	var se *StepError
	if !errors.As(err, &se) || se.Step != 1 || se.Code != 7 || !strings.Contains(se.Tail, "boom") {
		t.Fatalf("failing step: %v", err)
	}
	if p := se.Problem(); p.Kind() != api.KindBuildFailed || p.Field != "run[1]" || p.Status != 422 || !strings.Contains(p.Detail, "code 7") {
		t.Fatalf("problem %+v", p)
	}
	// Out of time (the whole build's bound).
	buildBase(t, s, "slow")
	_, err = s.RunSteps(ctx, "slow", []string{"sleep 600"}, BuildOptions{Sandboxes: m, Timeout: 5 * time.Second})
	if !errors.Is(err, sandbox.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow step: %v", err)
	}
	for _, n := range []string{"bad", "slow"} {
		if _, ok := s.Get(n); ok {
			t.Errorf("template %s kept after a failed build", n)
		}
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("%d sandboxes left after failed builds", n)
	}
	if _, err := s.RunSteps(ctx, "nope", []string{"true"}, BuildOptions{Sandboxes: m}); !errors.Is(err, sandbox.ErrUnknownTemplate) {
		t.Fatalf("unknown template: %v", err)
	}
}

// Bad steps are refused before anything runs, naming the field.
func TestBuildStepLimitsClass(t *testing.T) {
	for _, c := range []struct {
		steps []string
		field string
	}{
		{make([]string, MaxSteps+1), "run"},
		{[]string{"true", ""}, "run[1]"},
		{[]string{"  \n"}, "run[0]"},
		{[]string{strings.Repeat("x", MaxStepBytes+1)}, "run[0]"},
		{[]string{"echo a\x00b"}, "run[0]"},
		{[]string{strings.Repeat("x", MaxStepBytes), strings.Repeat("x", MaxStepBytes), strings.Repeat("x", MaxStepBytes), "x"}, "run"},
	} {
		err := CheckSteps(c.steps)
		var p *api.Problem
		if !errors.As(err, &p) || p.Kind() != api.KindValidation || p.Field != c.field {
			t.Errorf("%d steps: %v, want a validation problem on %s", len(c.steps), err, c.field)
		}
	}
	if err := CheckSteps([]string{"pip install x", strings.Repeat("x", MaxStepBytes)}); err != nil {
		t.Fatal(err)
	}
}

func FuzzCheckSteps(f *testing.F) {
	f.Add("true", "")
	f.Add("echo a\x00b", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		err := CheckSteps([]string{a, b})
		var p *api.Problem
		if err != nil && !errors.As(err, &p) {
			t.Fatalf("not a problem: %v", err)
		}
	})
}

// What a build step leaves is as untrusted as an uploaded layer: symlinks
// are stored as links (never followed, even to host paths), setuid bits
// are cleared, and a layer over the store's byte limit is refused (no
// template, no sandbox left).
func TestBuildLayerHostileClass(t *testing.T) {
	t.Parallel() // its own store, tier and Manager
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	s := openStore(t, Limits{MaxBytes: 64 << 20})
	m := newManager(t, s)
	ctx := t.Context()
	buildBase(t, s, "hostile")
	tpl, err := s.RunSteps(ctx, "hostile", []string{
		"ln -s /etc/shadow /usr/evil && ln -s ../../../../../.. /usr/up && ln /data/keep /usr/hard",
		"echo s > /usr/suid && chmod 4755 /usr/suid && chmod 2755 /usr",
	}, BuildOptions{Sandboxes: m})
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(s.layersDir(), tpl.Layers[len(tpl.Layers)-1])
	for link, want := range map[string]string{"usr/evil": "/etc/shadow", "usr/up": "../../../../../.."} {
		if got, err := os.Readlink(filepath.Join(top, link)); err != nil || got != want {
			t.Errorf("%s: %q %v, want a link to %q", link, got, err, want)
		}
	}
	for _, p := range []string{"usr/suid", "usr"} {
		fi, err := os.Lstat(filepath.Join(top, p))
		if err != nil || fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			t.Errorf("%s: %v %v: set-id bits kept", p, fi.Mode(), err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(top, "usr/hard")); err != nil || string(b) != "data/keep" {
		t.Errorf("hard link: %q %v", b, err)
	}

	buildBase(t, s, "big")
	_, err = s.RunSteps(ctx, "big", []string{"head -c 70000000 /dev/zero > /usr/big 2>/dev/null || true; test -s /usr/big"}, BuildOptions{Sandboxes: m})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("layer over the byte limit: %v", err)
	}
	if _, ok := s.Get("big"); ok {
		t.Fatal("template kept after a refused layer")
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("%d sandboxes left", n)
	}
}
