//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

// upperLayer is a MiniRootfs layer with ln and chmod, a /usr/local/lib
// and a /data the sandbox user may write, and base files in /data.
func upperLayer(t testing.TB) string {
	t.Helper()
	layer := filepath.Join(t.TempDir(), "layer")
	sandboxtest.MiniRootfs(t, layer)
	for _, tool := range []string{"ln", "chmod"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s on this host: %v", tool, err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(layer, "bin", tool), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/local/lib", "data", "data/sub"} {
		if err := os.MkdirAll(filepath.Join(layer, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(layer, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"data/gone.txt", "data/kept.txt", "data/sub/base.txt"} {
		if err := os.WriteFile(filepath.Join(layer, f), []byte("base\n"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	return layer
}

// TestImageUpperSnapshotClass: a gVisor sandbox of an image template
// changes its root outside /workspace (a new file under /usr, a base file
// deleted, a base directory removed and made again); a filesystem
// snapshot restored (on the tier and on a fresh tier), a memory snapshot
// restored, and a fork all see exactly those changes: the deleted file
// stays deleted, the remade directory hides the base's files, and the
// sandbox user can still write. Hostile entries of the upper dir are not
// carried: a symlink to a host path stays a link (never followed, and
// inside it names the sandbox's own root), a set-id bit is dropped, and a
// device node or fifo put in the upper dir is left out. The sandbox's
// volume is mounted in every copy.
func TestImageUpperSnapshotClass(t *testing.T) {
	t.Parallel() // its own tier and data dir; mostly waits on runsc
	tier := newTestTier(t)
	ctx := context.Background()
	layer := upperLayer(t)
	tier.images = dirImages{"mini": {layer}}
	m := newTestManager(t, tier)
	secret := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(secret, []byte("host only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh := func(sb sandbox.Sandbox, script string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}}, &out, &out)
		if err != nil {
			t.Fatalf("exec %q: %v", script, err)
		}
		return out.String(), code
	}
	vol := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "v"), []byte("vol\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor, Template: "mini",
		Volumes: []sandbox.VolumeMount{{Name: "ref", Path: "/mnt/ref", ReadOnly: true, HostDir: vol, LimitBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	change := "mkdir -p /usr/local/lib/pkg && echo mod > /usr/local/lib/pkg/mod.py" +
		" && rm /data/gone.txt && rm -r /data/sub && mkdir /data/sub && echo only > /data/sub/c" +
		" && echo new > /data/new.txt && /bin/ln -s " + secret + " /data/link" +
		" && echo s > /data/suid && /bin/chmod 4755 /data/suid"
	if out, code := sh(sb, change); code != 0 {
		t.Fatalf("change the root: %q %d", out, code)
	}
	const check = "cat /mnt/ref/v /usr/local/lib/pkg/mod.py; cd /data && echo * && cd sub && echo * && cat /data/new.txt /data/kept.txt; " +
		"test -e /data/gone.txt && echo GONE-BACK; cat /data/link 2>/dev/null || echo link-dangles; " +
		"test -u /data/suid && echo SETUID; test -e /data/null && echo DEVICE; test -e /data/fifo && echo FIFO; echo end"
	const want = "vol\nmod\nkept.txt link new.txt sub suid\nc\nnew\nbase\nlink-dangles\nend\n"
	const wantSource = "vol\nmod\nkept.txt link new.txt sub suid\nc\nnew\nbase\nlink-dangles\nSETUID\nend\n"
	if out, _ := sh(sb, check); out != wantSource {
		t.Fatalf("the sandbox itself: %q, want %q", out, wantSource)
	}
	upper := filepath.Join(sb.(*container).bundle, "upper")
	if err := os.MkdirAll(filepath.Join(upper, "data"), 0o777); err != nil { // there if the writes reached it
		t.Fatal(err)
	}
	// What a sandbox with more rights could leave there: a device, a fifo.
	if err := unix.Mknod(filepath.Join(upper, "data", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(upper, "data", "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	same := func(what string, c sandbox.Sandbox) {
		t.Helper()
		if out, _ := sh(c, check); out != want {
			t.Errorf("%s: %q, want %q", what, out, want)
		}
		if out, code := sh(c, "echo w > /data/sub/w && echo x > /data/gone.txt && cat /data/sub/w /data/gone.txt"); code != 0 || out != "w\nx\n" {
			t.Errorf("%s: writes: %q %d", what, out, code)
		}
	}

	dir := filepath.Join(t.TempDir(), "snap")
	res, err := m.Snapshot(ctx, sb.ID(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Memory {
		t.Fatalf("snapshot: no memory: %q", res.Note)
	}
	saved := filepath.Join(dir, sandbox.SnapshotUpper)
	checkSaved(t, saved, secret)

	r, err := m.Restore(ctx, res.Spec, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	same("filesystem restore", r)
	rm, err := m.Restore(ctx, res.Spec, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	same("memory restore", rm)
	forks, err := m.Fork(ctx, sb.ID(), 1)
	if err != nil || len(forks) != 1 {
		t.Fatalf("fork: %d %v", len(forks), err)
	}
	same("fork", forks[0])
	// The source changes on; the snapshot does not.
	if out, code := sh(sb, "rm /data/new.txt && echo later > /usr/local/lib/pkg/later.py"); code != 0 {
		t.Fatalf("change the source: %q %d", out, code)
	}
	for _, c := range []sandbox.Sandbox{r, rm, forks[0], sb} {
		if err := m.Delete(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
	}

	// A fresh tier (another daemon) restores the same snapshot.
	tier2 := newTestTier(t)
	tier2.images = tier.images
	m2 := newTestManager(t, tier2)
	for _, memory := range []bool{false, true} {
		c, err := m2.Restore(ctx, res.Spec, dir, memory)
		if err != nil {
			t.Fatalf("fresh tier, memory %v: %v", memory, err)
		}
		same("fresh tier restore", c)
		if out, _ := sh(c, "test -e /usr/local/lib/pkg/later.py && echo LATER; echo end"); out != "end\n" {
			t.Errorf("fresh tier restore sees a later change: %q", out)
		}
		if err := m2.Delete(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSaved checks a snapshot's upper dir: the changes as overlayfs
// records them, and nothing hostile.
func checkSaved(t *testing.T, saved, secret string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(saved, "data", "gone.txt"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("saved whiteout: %+v %v", st, err)
	}
	v := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(saved, "data", "sub"), "trusted.overlay.opaque", v); err != nil || string(v[:n]) != "y" {
		t.Errorf("saved opaque marker: %q %v", v[:max(n, 0)], err)
	}
	if target, err := os.Readlink(filepath.Join(saved, "data", "link")); err != nil || target != secret {
		t.Errorf("saved symlink: %q %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(saved, "usr", "local", "lib", "pkg", "mod.py")); err != nil || string(b) != "mod\n" {
		t.Errorf("saved new file: %q %v", b, err)
	}
	err := filepath.WalkDir(saved, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(d.Name(), ".gvisor"):
			t.Errorf("saved upper holds runsc's file %s", p)
		case fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0:
			t.Errorf("saved upper keeps a set-id bit: %s %v", p, fi.Mode())
		case fi.Mode()&fs.ModeNamedPipe != 0:
			t.Errorf("saved upper holds a fifo %s", p)
		case fi.Mode()&fs.ModeDevice != 0:
			if err := unix.Lstat(p, &st); err != nil || st.Rdev != 0 {
				t.Errorf("saved upper holds a device that is not a whiteout: %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("saved upper: %v", err)
	}
}

// TestImageUpperOldSnapshot: a memory snapshot of an image sandbox taken
// under runsc's own overlay (before its root's writes reached the upper
// dir: it has no saved upper dir) restores with those writes, which are
// in its memory image.
func TestImageUpperOldSnapshot(t *testing.T) {
	t.Parallel() // its own tier and data dir; mostly waits on runsc
	tier := newTestTier(t)
	ctx := context.Background()
	tier.images = dirImages{"mini": {upperLayer(t)}}
	tier.runscOverlay = true
	m := newTestManager(t, tier)
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor, Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	sh := func(sb sandbox.Sandbox, script string) string {
		t.Helper()
		var out bytes.Buffer
		if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}}, &out, &out); err != nil {
			t.Fatalf("exec %q: %v", script, err)
		}
		return out.String()
	}
	if out := sh(sb, "rm /data/gone.txt && echo new > /data/new.txt && echo ok"); out != "ok\n" {
		t.Fatalf("change the root: %q", out)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	res, err := m.Snapshot(ctx, sb.ID(), dir)
	if err != nil || !res.Memory {
		t.Fatalf("snapshot: %+v %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dir, sandbox.SnapshotUpper)); !os.IsNotExist(err) {
		t.Fatalf("a snapshot under runsc's overlay saved an upper dir: %v", err)
	}
	tier.runscOverlay = false
	r, err := m.Restore(ctx, res.Spec, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if out := sh(r, "echo /data/*; cat /data/new.txt"); out != "/data/kept.txt /data/new.txt /data/sub\nnew\n" {
		t.Errorf("restored: %q", out)
	}
	for _, c := range []sandbox.Sandbox{r, sb} {
		if err := m.Delete(ctx, c.ID()); err != nil {
			t.Fatal(err)
		}
	}
}

// pythonLayer is upperLayer with the host's python3 (forwarderPython,
// its libraries and standard library), so that the exec agent runs.
func pythonLayer(b *testing.B) string {
	b.Helper()
	layer := upperLayer(b)
	out, err := exec.Command(forwarderPython, "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])").Output()
	if err != nil {
		b.Skipf("no %s: %v", forwarderPython, err)
	}
	files := []string{forwarderPython}
	ldd, _ := exec.Command("ldd", forwarderPython).Output()
	for _, f := range strings.Fields(string(ldd)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		real, err := filepath.EvalSymlinks(f)
		if err != nil {
			b.Fatal(err)
		}
		data, err := os.ReadFile(real)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(layer, f)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(layer, f), data, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	stdlib := strings.TrimSpace(string(out))
	if err := os.MkdirAll(filepath.Dir(filepath.Join(layer, stdlib)), 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", stdlib, filepath.Join(layer, stdlib)).CombinedOutput(); err != nil {
		b.Fatalf("copy %s: %v: %s", stdlib, err, out)
	}
	return layer
}

// BenchmarkImageRoot: create, a python3 exec, and one writing, reading and
// removing 200 files of 4 KiB in the image root, with the root served
// without runsc's own overlay (as the tier runs it: writes reach the
// host's upper dir) and under it (runsc's default, --overlay2=root:self).
func BenchmarkImageRoot(b *testing.B) {
	layer := pythonLayer(b)
	for _, mode := range []string{"overlay2-none", "overlay2-root-self"} {
		b.Run(mode, func(b *testing.B) {
			tier := newTestTier(b)
			tier.images = dirImages{"mini": {layer}}
			tier.runscOverlay = mode == "overlay2-root-self"
			b.Run("create", func(b *testing.B) {
				for b.Loop() {
					sb, err := sandbox.Create(b.Context(), tier, "bench", sandbox.Spec{Template: "mini"})
					if err != nil {
						b.Fatal(err)
					}
					sb.Close()
				}
			})
			sb, err := sandbox.Create(b.Context(), tier, "bench", sandbox.Spec{Template: "mini"})
			if err != nil {
				b.Fatal(err)
			}
			defer sb.Close()
			run := func(b *testing.B, script string) {
				for b.Loop() {
					var out bytes.Buffer
					code, err := sb.Exec(b.Context(), sandbox.ExecSpec{Cmd: forwarderPython, Args: []string{"-c", script}}, &out, &out)
					if err != nil || code != 0 {
						b.Fatalf("%d %v %s", code, err, out.String())
					}
				}
			}
			b.Run("exec-python", func(b *testing.B) { run(b, "print(1)") })
			b.Run("exec-200-files", func(b *testing.B) {
				run(b, "import os\nfor i in range(200):\n    p = '/data/f%d' % i\n    open(p, 'w').write('x' * 4096)\n    open(p).read()\n    os.unlink(p)")
			})
		})
	}
}
