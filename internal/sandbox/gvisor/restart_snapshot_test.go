//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestMemorySnapshotAcrossRestartClass: a snapshot with memory taken by
// one daemon run restores with its memory in the next one (a new tier and
// Manager on the same data directory, as after a restart): a process whose
// token exists only in its memory answers with the same token, and the
// snapshot's files are there.
func TestMemorySnapshotAcrossRestartClass(t *testing.T) {
	if err := Available(""); err != nil {
		t.Skipf("gvisor tier unavailable: %v", err)
	}
	if testing.Short() {
		t.Skip("gvisor tests start runsc sandboxes (slow); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	data := t.TempDir()
	for _, d := range []string{data, filepath.Dir(data)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func() (*Tier, *sandbox.Manager) {
		t.Helper()
		tier, err := New(Config{DataDir: data})
		if err != nil {
			t.Fatal(err)
		}
		if !tier.egress {
			tier.Close()
			t.Skip("runsc without --host-uds: no exec agent")
		}
		m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return tier, m
	}
	ask := func(what string, sb sandbox.Sandbox) string { return askToken(ctx, t, what, sb) }

	tier1, m1 := run()
	sb, err := m1.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor})
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile(ctx, "/workspace/kept.txt", strings.NewReader("files too"), 0o644); err != nil {
		t.Fatal(err)
	}
	startTokenProcess(ctx, t, sb)
	token := ask("before the snapshot", sb)
	if len(token) != 32 {
		t.Fatalf("token %q", token)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	res, err := m1.Snapshot(ctx, sb.ID(), dir)
	if err != nil || !res.Memory {
		t.Fatalf("snapshot: %+v %v", res, err)
	}
	// The daemon stops: its sandboxes go, the snapshot stays.
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tier1.Close(); err != nil {
		t.Fatal(err)
	}

	tier2, m2 := run()
	defer tier2.Close()
	defer m2.Close()
	r, err := m2.Restore(ctx, res.Spec, dir, true)
	if err != nil {
		t.Fatalf("restore with memory after a restart: %v", err)
	}
	if got := ask("restored after a restart", r); got != token {
		t.Errorf("restored process answered %q, want its token %q from before the restart", got, token)
	}
	var b bytes.Buffer
	if err := r.ReadFile(ctx, "/workspace/kept.txt", &b); err != nil || b.String() != "files too" {
		t.Errorf("restored /workspace/kept.txt = %q, %v", b.String(), err)
	}
	if err := m2.Delete(ctx, r.ID()); err != nil {
		t.Fatal(err)
	}
}

// startTokenProcess starts, in sb, a python process holding a random token
// in its memory only; askToken has it write the token and returns it.
func startTokenProcess(ctx context.Context, t *testing.T, sb sandbox.Sandbox) {
	t.Helper()
	if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "python3", Args: []string{"-c",
		"import os, time, secrets\ntoken = secrets.token_hex(16)\nwhile True:\n    if os.path.exists('/tmp/ask'):\n        os.remove('/tmp/ask')\n        open('/tmp/answer', 'w').write(token)\n    time.sleep(0.05)\n"}}); err != nil {
		t.Fatal(err)
	}
}

// askToken has the process of startTokenProcess write its token, and
// returns it.
func askToken(ctx context.Context, t *testing.T, what string, sb sandbox.Sandbox) string {
	t.Helper()
	if err := sb.WriteFile(ctx, "/tmp/ask", strings.NewReader(""), 0o644); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var b bytes.Buffer
		if err := sb.ReadFile(ctx, "/tmp/answer", &b); err == nil && b.Len() > 0 {
			_ = sb.Remove(ctx, "/tmp/answer")
			return b.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the process never answered", what)
		}
	}
}
