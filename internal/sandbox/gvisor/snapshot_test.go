//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestSnapshotMemoryClass: a gVisor sandbox's snapshot saves its memory
// state (runsc checkpoint) and its /workspace files, and a restore from it
// runs with both; a filesystem-only restore has the files; a paused
// sandbox can be snapshotted and stays paused; a deleted sandbox, an
// existing target directory and a missing snapshot are refused; a fork
// checkpoints once and restores each copy with the files. Restores and
// forks mount the sandbox's volume again, read-only as it was. One
// sandbox is reused. (TestProcessesRestoredClass checks the processes.)
func TestSnapshotMemoryClass(t *testing.T) {
	tier := newTestTier(t)
	ctx := context.Background()
	m := newTestManager(t, tier)
	vol := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(vol, sandbox.SandboxUID, sandbox.SandboxGID); err != nil {
		t.Fatal(err)
	}
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor,
		Volumes: []sandbox.VolumeMount{{Name: "data", Path: "/mnt/data", ReadOnly: true, HostDir: vol, LimitBytes: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile(ctx, "/workspace/a.txt", strings.NewReader("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "v"), []byte("vol"), 0o644); err != nil {
		t.Fatal(err)
	}
	// hasVolume: a sandbox made from sb mounts its volume read-only.
	hasVolume := func(what string, c sandbox.Sandbox) {
		t.Helper()
		var out bytes.Buffer
		code, err := c.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "cat /mnt/data/v && echo x > /mnt/data/w"}}, &out, &out)
		if err != nil || code == 0 || !strings.HasPrefix(out.String(), "vol") {
			t.Errorf("%s: volume: %d %v %q, want it read-only", what, code, err, out.String())
		}
	}
	dir := filepath.Join(t.TempDir(), "snap")
	t0 := time.Now()
	res, err := m.Snapshot(ctx, sb.ID(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot with memory: %v", time.Since(t0))
	if !res.Memory || res.Note != "" {
		t.Fatalf("snapshot: memory %v note %q, want memory", res.Memory, res.Note)
	}
	if _, err := m.Snapshot(ctx, sb.ID(), dir); err == nil {
		t.Fatal("snapshot into an existing directory: no error")
	}

	t0 = time.Now()
	r1, err := m.Restore(ctx, res.Spec, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore with memory: %v", time.Since(t0))
	var b bytes.Buffer
	if err := r1.ReadFile(ctx, "/workspace/a.txt", &b); err != nil || b.String() != "kept" {
		t.Fatalf("restored /workspace/a.txt = %q, %v", b.String(), err)
	}
	var out bytes.Buffer
	if code, err := r1.Exec(ctx, sandbox.ExecSpec{Cmd: "cat", Args: []string{"/workspace/a.txt"}}, &out, &out); err != nil || code != 0 || out.String() != "kept" {
		t.Fatalf("exec in restored sandbox: %d %v %q", code, err, out.String())
	}
	hasVolume("restore with memory", r1)
	if err := m.Delete(ctx, r1.ID()); err != nil {
		t.Fatal(err)
	}

	r2, err := m.Restore(ctx, res.Spec, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := r2.ReadFile(ctx, "/workspace/a.txt", &b); err != nil || b.String() != "kept" {
		t.Fatalf("filesystem-only restore: /workspace/a.txt = %q, %v", b.String(), err)
	}
	out.Reset()
	if code, err := r2.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "echo x > /workspace/new && ls -l /workspace/a.txt"}}, &out, &out); err != nil || code != 0 {
		t.Fatalf("filesystem-only restore: exec %d %v %q", code, err, out.String())
	}
	hasVolume("filesystem-only restore", r2)
	if err := m.Delete(ctx, r2.ID()); err != nil {
		t.Fatal(err)
	}

	t0 = time.Now()
	forks, err := m.Fork(ctx, sb.ID(), 2)
	if err != nil || len(forks) != 2 {
		t.Fatalf("fork with memory: %d %v", len(forks), err)
	}
	t.Logf("fork of 2 with memory: %v", time.Since(t0))
	for _, f := range forks {
		b.Reset()
		if err := f.ReadFile(ctx, "/workspace/a.txt", &b); err != nil || b.String() != "kept" {
			t.Fatalf("fork %s: /workspace/a.txt = %q, %v", f.ID(), b.String(), err)
		}
		hasVolume("fork", f)
		if err := m.Delete(ctx, f.ID()); err != nil {
			t.Fatal(err)
		}
	}

	if err := m.Pause(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	res2, err := m.Snapshot(ctx, sb.ID(), filepath.Join(t.TempDir(), "paused"))
	if err != nil || !res2.Memory {
		t.Fatalf("snapshot of a paused sandbox: %+v %v", res2, err)
	}
	if !m.Paused(sb.ID()) {
		t.Fatal("a paused sandbox is no longer paused after a snapshot")
	}
	if err := m.Delete(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Snapshot(ctx, sb.ID(), filepath.Join(t.TempDir(), "gone")); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("snapshot of a deleted sandbox: %v, want ErrNotFound", err)
	}
	if _, err := m.Restore(ctx, res.Spec, filepath.Join(t.TempDir(), "missing"), true); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restore of a missing snapshot: %v, want not-exist", err)
	}
}
