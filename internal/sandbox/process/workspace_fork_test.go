//go:build linux

package process

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// forkCopyDir lays a fork copy's host directory out as sandbox.Manager
// does (dir/lower naming the layer; dir/workspace, when mounted, a plain
// overlay of it below dir/ws-upper, as the Manager mounts a kept copy's
// again) and returns the workspace; the test unmounts it.
func forkCopyDir(t *testing.T, data, layer, id string, mounted bool) string {
	t.Helper()
	dir := filepath.Join(data, id)
	for _, d := range []string{"workspace", "ws-upper", "ws-work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "lower"), []byte(filepath.Base(layer)), 0o600); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "workspace")
	fl := sandbox.ForkLayer{Lower: layer, Upper: filepath.Join(dir, "ws-upper"), Work: filepath.Join(dir, "ws-work")}
	if mounted {
		if err := fl.Mount(ws); err != nil {
			t.Skipf("overlay: %v", err)
		}
	}
	t.Cleanup(func() {
		for mountCount(ws) > 0 {
			if err := unix.Unmount(ws, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", ws, err)
				return
			}
		}
	})
	return ws
}

// mountCount is how many mounts /proc/self/mountinfo has on p.
func mountCount(p string) int {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	return bytes.Count(mi, []byte(" "+p+" "))
}

func ownerOf(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// TestForkCopyIdmappedLayerClass: fork copies over one frozen layer (its
// files stored as the in-sandbox user) start without a copy-up (the code
// that chowned the copy's workspace through the overlay copied every file
// up, so the test fails against it), see the layer's files as their own,
// write to their own upper dir as their own host uid (a setuid file
// included: never the canonical owner, never root), never see each
// other's writes, leave the layer as it was, and a copy started again
// under another host uid owns what it wrote before.
func TestForkCopyIdmappedLayerClass(t *testing.T) {
	tier := newTestTier(t)
	data := t.TempDir()
	layer := filepath.Join(data, ".layers", "l-"+strings.Repeat("0b", 12))
	if err := os.MkdirAll(filepath.Join(layer, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a", "b", "d/c"} {
		if err := os.WriteFile(filepath.Join(layer, name), bytes.Repeat([]byte{'x'}, 100*(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a", "b", "d", "d/c"} {
		if err := os.Lchown(filepath.Join(layer, name), sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
			t.Fatal(err)
		}
	}
	ws1, ws2 := forkCopyDir(t, data, layer, "c1", false), forkCopyDir(t, data, layer, "c2", true)
	s1, err := sandbox.Create(t.Context(), tier, "c1", sandbox.Spec{HostWorkspace: ws1})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := sandbox.Create(t.Context(), tier, "c2", sandbox.Spec{HostWorkspace: ws2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if tier.forkIdmap.state.Load() != forkIdmapOn {
		t.Skip("fork layers cannot be idmapped here")
	}
	upper1 := filepath.Join(data, "c1", "ws-upper")
	if ents, _ := os.ReadDir(upper1); len(ents) != 0 {
		t.Fatalf("activation copied %d entries up", len(ents))
	}
	script := "stat -c %u:%g /workspace /workspace/d/c && wc -c < /workspace/b && echo y >> /workspace/a && rm /workspace/b && " +
		"echo n > /workspace/d/new && cp /bin/true /workspace/s && chmod 4755 /workspace/s"
	if got, code := run(t, s1, script); code != 0 || got != "1000:1000\n1000:1000\n200\n" {
		t.Fatalf("copy 1: %d %q", code, got)
	}
	if got, _ := run(t, s2, "wc -c < /workspace/a; wc -c < /workspace/b; ls /workspace /workspace/d"); got != "100\n200\n/workspace:\na\nb\nd\n\n/workspace/d:\nc\n" {
		t.Fatalf("copy 2 sees copy 1's writes: %q", got)
	}
	host1 := fmt.Sprintf("%d:%d", s1.(*box).hostUID, s1.(*box).hostGID)
	if host1 == ownerOf(t, filepath.Join(data, "c2", "ws-upper")) {
		t.Fatalf("two copies share host ids %s", host1)
	}
	for _, name := range []string{"a", "d/new", "s"} {
		if o := ownerOf(t, filepath.Join(upper1, name)); o != host1 {
			t.Errorf("upper %s on disk is %s, want copy 1's host ids %s", name, o, host1)
		}
	}
	for _, name := range []string{"a", "b", "d", "d/c"} {
		if o := ownerOf(t, filepath.Join(layer, name)); o != "1000:1000" {
			t.Errorf("layer %s became %s", name, o)
		}
	}
	if b, err := os.ReadFile(filepath.Join(layer, "a")); err != nil || len(b) != 100 {
		t.Errorf("layer file changed: %d bytes %v", len(b), err)
	}
	// The host sees the sandbox's overlay: one mount on the workspace, which a
	// fresh copy did not have before it started.
	if n := mountCount(ws1); n != 1 {
		t.Errorf("%d mounts on %s, want 1", n, ws1)
	}
	if b, err := os.ReadFile(filepath.Join(ws1, "a")); err != nil || len(b) != 102 {
		t.Errorf("host view of copy 1: %d bytes %v", len(b), err)
	}
	// Started again (another host uid): its own writes are its own.
	s1.Close()
	again, err := sandbox.Create(t.Context(), tier, "c1b", sandbox.Spec{HostWorkspace: ws1})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got, code := run(t, again, "stat -c %u /workspace/a /workspace/d/new /workspace/d/c && echo z >> /workspace/d/new && ls /workspace"); code != 0 || got != "1000\n1000\n1000\na\nd\ns\n" {
		t.Fatalf("copy 1 started again: %d %q", code, got)
	}
	hostAgain := fmt.Sprintf("%d:%d", again.(*box).hostUID, again.(*box).hostGID)
	if o := ownerOf(t, filepath.Join(upper1, "d", "new")); o != hostAgain || hostAgain == host1 {
		t.Errorf("upper file after a restart is %s, want %s (was %s)", o, hostAgain, host1)
	}
	for _, ws := range []string{ws1, ws2} { // c2's plain mount was replaced
		if n := mountCount(ws); n != 1 {
			t.Errorf("%d mounts on %s, want 1", n, ws)
		}
	}
}

// TestForkLayerOfClass: only a mounted workspace whose "lower" file names
// a layer of the Manager's form is taken for a fork copy's; a damaged or
// hostile name (a path out of the layers dir) is not, and such a workspace
// is chowned as any other.
func TestForkLayerOfClass(t *testing.T) {
	data := t.TempDir()
	layer := filepath.Join(data, ".layers", "l-"+strings.Repeat("0c", 12))
	if err := os.MkdirAll(layer, 0o700); err != nil {
		t.Fatal(err)
	}
	ws := forkCopyDir(t, data, layer, "c", true)
	if fl, ok := sandbox.ForkLayerOf(ws); !ok || fl.Lower != layer || fl.Upper != filepath.Join(data, "c", "ws-upper") {
		t.Fatalf("fork layer of %s: %+v %v", ws, fl, ok)
	}
	for _, bad := range []string{"../../etc", "l-" + strings.Repeat("0C", 12), "l-" + strings.Repeat("0c", 11) + "/.", "", "/tmp"} {
		if err := os.WriteFile(filepath.Join(data, "c", "lower"), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if fl, ok := sandbox.ForkLayerOf(ws); ok {
			t.Errorf("lower %q taken for a layer: %+v", bad, fl)
		}
	}
	plain := filepath.Join(t.TempDir(), "workspace")
	if err := os.Mkdir(plain, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, ok := sandbox.ForkLayerOf(plain); ok {
		t.Errorf("an unmounted workspace taken for a fork copy's")
	}
}

// TestForkCopyIdmapRefusedClass: where the kernel or the data filesystem
// refuses to idmap the layer, a fork copy still starts with the layer's
// files in one plain overlay — whether the refusal is the tier's first
// (nothing was unmounted yet, and a fresh copy has nothing mounted: the
// Manager leaves the mount to the tier) or known from before — never with
// a bare directory as its workspace.
func TestForkCopyIdmapRefusedClass(t *testing.T) {
	old := idmapForkLayer
	idmapForkLayer = func(string, int, bool) (*os.File, error) { return nil, unix.EPERM }
	t.Cleanup(func() { idmapForkLayer = old })
	tier := newTestTier(t)
	data := t.TempDir()
	layer := filepath.Join(data, ".layers", "l-"+strings.Repeat("0c", 12))
	if err := os.MkdirAll(layer, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layer, "a"), []byte("layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(layer, "a"), sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		id      string
		mounted bool
	}{{"c1", false}, {"c2", false}, {"c3", true}} {
		ws := forkCopyDir(t, data, layer, c.id, c.mounted)
		sb, err := sandbox.Create(t.Context(), tier, c.id, sandbox.Spec{HostWorkspace: ws})
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		got, code := run(t, sb, "cat /workspace/a && echo mine > /workspace/b && cat /workspace/b")
		if code != 0 || got != "layer\nmine\n" {
			t.Errorf("copy %d (idmap state %d): %d %q", i, tier.forkIdmap.state.Load(), code, got)
		}
		if n := mountCount(ws); n != 1 {
			t.Errorf("copy %d: %d mounts on its workspace, want 1", i, n)
		}
		if _, err := os.Stat(filepath.Join(layer, "b")); err == nil {
			t.Errorf("copy %d wrote into the layer", i)
		}
		_ = sb.Close()
	}
	if st := tier.forkIdmap.state.Load(); st != forkIdmapOff {
		t.Errorf("idmap state %d after refusals, want off", st)
	}
}
