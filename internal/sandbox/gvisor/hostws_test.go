//go:build linux

package gvisor

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxstate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestHostWSRestartClass (a short name: the socket paths under its temp
// dir must fit in 108 bytes): with HostWorkspaceDir, a gVisor
// sandbox's /workspace is <dir>/<id>/workspace on the host (written from
// inside, seen from the host); after the Manager and tier stop, the next
// start lists it stopped without "lost", starting it again shows its
// files, and deleting it removes them; nothing prepared is left behind.
func TestHostWSRestartClass(t *testing.T) {
	ctx := t.Context()
	data := t.TempDir()
	dir, pool := filepath.Join(data, "sandboxes"), filepath.Join(data, "sandbox-pool")
	up := hostWSNode(t, data)
	tier, m := up()
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor})
	if err != nil {
		t.Fatal(err)
	}
	id := sb.ID()
	var out bytes.Buffer
	if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "mkdir -p d && echo inside > d/f"}}, &out, &out); err != nil || code != 0 {
		t.Fatalf("write from inside: %d %v %s", code, err, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, id, "workspace", "d", "f")); err != nil || string(b) != "inside\n" {
		t.Fatalf("host copy of /workspace/d/f: %q %v", b, err)
	}
	if err := sb.WriteFile(ctx, "/workspace/host.txt", strings.NewReader("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = m.Close()
	_ = tier.Close()

	tier, m = up()
	defer func() { _ = m.Close(); _ = tier.Close() }()
	info, err := m.Info(id)
	if err != nil || info.State != sandbox.StateStopped || strings.Contains(info.Reason, "lost") {
		t.Fatalf("after a restart: %+v %v", info, err)
	}
	sb, err = m.StartSandbox(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "cat", Args: []string{"d/f", "host.txt"}}, &out, &out); err != nil || code != 0 || out.String() != "inside\nhost" {
		t.Fatalf("files after a restart: %d %v %q", code, err, out.String())
	}
	if err := m.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, id)); !os.IsNotExist(err) {
		t.Fatalf("deleted sandbox's dir: %v", err)
	}
	if ents, _ := os.ReadDir(pool); len(ents) != 0 {
		t.Fatalf("prepared workspaces left: %d", len(ents))
	}
}

// hostWSNode returns a function starting what a daemon's gVisor part is
// on data: a tier keeping workspaces on host storage (data/sandbox-pool)
// and a Manager with durable records in a real store and host dirs under
// data/sandboxes. Calling it again is a daemon restart on the same data.
func hostWSNode(t *testing.T, data string) func() (*Tier, *sandbox.Manager) {
	t.Helper()
	st, err := store.Open(t.Context(), store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return func() (*Tier, *sandbox.Manager) {
		t.Helper()
		base := newTestTier(t) // skips where the tier cannot run
		tier, err := New(Config{DataDir: filepath.Dir(filepath.Dir(base.stateDir)), HostWorkspaceDir: filepath.Join(data, "sandbox-pool")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tier.Close() })
		m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, Records: sandboxstate.New(st, ""),
			Dir: filepath.Join(data, "sandboxes"), QuotaInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() }) // before the tier's (cleanups run last first): a failed test leaves no sandbox running
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return tier, m
	}
}
