package sandboxhttp_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

// TestImageUpperSnapshotClass: a sandbox of an image template changes
// its root outside /workspace (a base file deleted, a base directory
// removed and made again, a new file); a snapshot restored,
// and a fork, see exactly those changes: the deleted file stays deleted
// (its whiteout kept), the remade directory hides the base's files (its
// opaque marker kept), the new files are there; the sandbox user can
// still write where it could. The saved upper dir holds no device but
// whiteouts.
func TestImageUpperSnapshotClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	s := startTemplateServer(t)
	ctx := t.Context()
	rootfs := t.TempDir()
	sandboxtest.MiniRootfs(t, rootfs)
	for _, d := range []string{"data", "data/sub"} {
		if err := os.Mkdir(filepath.Join(rootfs, d), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(rootfs, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"data/gone.txt", "data/kept.txt", "data/sub/base.txt"} {
		if err := os.WriteFile(filepath.Join(rootfs, f), []byte("base\n"), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.client.CreateTemplateFromDir(ctx, "layered", rootfs, client.Build{}); err != nil {
		t.Fatal(err)
	}
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{Template: "layered"})
	if err != nil {
		t.Fatal(err)
	}
	sh := func(id, script string) (string, int) {
		t.Helper()
		var out bytes.Buffer
		code, err := s.client.Exec(ctx, id, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c", script}}, &out, &out)
		if err != nil {
			t.Fatalf("exec %q: %v", script, err)
		}
		return out.String(), code
	}
	if out, code := sh(sb.ID, "rm /data/gone.txt && rm -r /data/sub && mkdir /data/sub && echo only > /data/sub/c && echo new > /data/new.txt"); code != 0 {
		t.Fatalf("change the root: %q %d", out, code)
	}
	const check = "cd /data && echo * && cd sub && echo * && cat /data/new.txt /data/kept.txt"
	const want = "kept.txt new.txt sub\nc\nnew\nbase\n"
	writable := func(what, id string) {
		t.Helper()
		if out, code := sh(id, "echo w > /data/sub/w && echo x > /data/gone.txt && cat /data/sub/w"); code != 0 || out != "w\n" {
			t.Errorf("%s: writes: %q %d", what, out, code)
		}
	}
	if out, _ := sh(sb.ID, check); out != want {
		t.Fatalf("the sandbox itself: %q, want %q", out, want)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	res, err := s.manager.Snapshot(ctx, sb.ID, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Only whiteouts among the saved devices.
	_ = filepath.WalkDir(filepath.Join(dir, sandbox.SnapshotUpper), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&os.ModeDevice != 0 && d.Type()&os.ModeCharDevice == 0 {
			t.Errorf("saved upper holds a block device %s", p)
		}
		return nil
	})
	r, err := s.manager.Restore(ctx, res.Spec, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := sh(r.ID(), check); out != want {
		t.Errorf("restored: %q, want %q", out, want)
	}
	writable("restored", r.ID())
	forks, err := s.manager.Fork(ctx, sb.ID, 1)
	if err != nil || len(forks) != 1 {
		t.Fatalf("fork: %v", err)
	}
	if out, _ := sh(forks[0].ID(), check); out != want {
		t.Errorf("fork: %q, want %q", out, want)
	}
	writable("fork", forks[0].ID())
	for _, id := range []string{r.ID(), forks[0].ID(), sb.ID} {
		if err := s.manager.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
