//go:build linux

package snapshot_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxstate"
	"github.com/agentcloud/agentcloud/internal/sandbox/snapshot"
	"github.com/agentcloud/agentcloud/internal/store"
)

func TestMain(m *testing.M) {
	process.MaybeRunInit()
	os.Exit(m.Run())
}

// node is one run of a daemon's sandbox part: a process tier, a Manager
// with durable records and a snapshot Service, on a store and data dir
// that outlive it.
type node struct {
	tier *process.Tier
	m    *sandbox.Manager
	s    *snapshot.Service
}

func start(t *testing.T, st *store.Store, data string, cfg snapshot.Config) *node {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process tier unavailable: %v", err)
	}
	tierDir := t.TempDir()
	for _, d := range []string{tierDir, filepath.Dir(tierDir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := process.New(process.Config{DataDir: tierDir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, Records: sandboxstate.New(st, ""),
		Dir: filepath.Join(data, "sandboxes"), QuotaInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg.Manager, cfg.Store, cfg.Dir = m, st, filepath.Join(data, "snapshots")
	s, err := snapshot.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{tier: tier, m: m, s: s}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	if n.m != nil {
		n.m.Close()
		n.tier.Close()
		n.m = nil
	}
}

func owned(owner string) sandbox.Spec {
	return sandbox.Spec{Labels: map[string]string{sandbox.LabelOwner: owner}, Limits: sandbox.Limits{DiskMB: 64}}
}

func readFile(t *testing.T, sb sandbox.Sandbox, p string) string {
	t.Helper()
	var b bytes.Buffer
	if err := sb.ReadFile(t.Context(), p, &b); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b.String()
}

// TestSnapshotServiceClass: process-tier snapshots are files only and say
// why; a restore has the files and the owner; each owner's count and
// bytes are capped (administrators exempt); malformed, unknown and deleted
// ids answer not found; a sandbox that is gone cannot be snapshotted; a
// restore racing a delete either restores whole or finds nothing; a daemon
// killed between writing a snapshot's files and its record leaves nothing
// behind on the next start, and acknowledged snapshots restore after it.
func TestSnapshotServiceClass(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	data := t.TempDir()
	cfg := snapshot.Config{MaxPerOwner: 2, MaxBytesPerOwner: 1 << 20, Exempt: func(o string) bool { return o == "admin" }}
	n := start(t, st, data, cfg)

	sb, err := n.m.Create(ctx, "", owned("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Mkdir(ctx, "/workspace/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sb.WriteFile(ctx, "/workspace/d/a.txt", strings.NewReader("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec, err := n.s.Create(ctx, sb.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Memory || !strings.Contains(rec.Note, "CRIU") || rec.Owner != "alice" || rec.Bytes <= 0 || !snapshot.ValidID(rec.ID) {
		t.Fatalf("process-tier snapshot: %+v", rec)
	}
	r1, got, err := n.s.Restore(ctx, rec.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := readFile(t, r1, "/workspace/d/a.txt"); s != "kept" || got.ID != rec.ID || r1.Spec().Labels[sandbox.LabelOwner] != "alice" {
		t.Fatalf("restored: %q owner %q", s, r1.Spec().Labels[sandbox.LabelOwner])
	}
	if err := n.m.Delete(ctx, r1.ID()); err != nil {
		t.Fatal(err)
	}

	t.Run("quota", func(t *testing.T) {
		second, err := n.s.Create(ctx, sb.ID())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.s.Create(ctx, sb.ID()); !errors.Is(err, snapshot.ErrQuota) {
			t.Fatalf("third snapshot of a 2-snapshot owner: %v, want ErrQuota", err)
		}
		if err := n.s.Delete(ctx, second.ID); err != nil {
			t.Fatal(err)
		}
		big, err := n.m.Create(ctx, "", owned("bob"))
		if err != nil {
			t.Fatal(err)
		}
		if err := big.WriteFile(ctx, "/workspace/big", bytes.NewReader(bytes.Repeat([]byte{1}, 2<<20)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := n.s.Create(ctx, big.ID()); !errors.Is(err, snapshot.ErrQuota) {
			t.Fatalf("2 MiB snapshot with a 1 MiB quota: %v, want ErrQuota", err)
		}
		admin, err := n.m.Create(ctx, "", owned("admin"))
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.WriteFile(ctx, "/workspace/big", bytes.NewReader(bytes.Repeat([]byte{1}, 2<<20)), 0o644); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := n.s.Create(ctx, admin.ID()); err != nil {
				t.Fatalf("exempt owner: %v", err)
			}
		}
		left, _ := os.ReadDir(filepath.Join(data, "snapshots"))
		for _, e := range left {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				t.Fatalf("refused snapshot left %s behind", e.Name())
			}
		}
	})

	t.Run("bad ids", func(t *testing.T) {
		for _, id := range []string{"", "..", "../sandboxes", "snap-", "snap-ZZZZZZZZZZZZZZZZZZZZ", "snap-0123456789abcdef012",
			"snap-0123456789abcdef0123", strings.Repeat("a", 200), "snap-0123456789ABCDEF0123", rec.ID + "/x"} {
			if _, err := n.s.Get(ctx, id); !errors.Is(err, snapshot.ErrNotFound) {
				t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
			}
			if _, _, err := n.s.Restore(ctx, id, nil); !errors.Is(err, snapshot.ErrNotFound) {
				t.Errorf("Restore(%q): %v, want ErrNotFound", id, err)
			}
			if err := n.s.Delete(ctx, id); !errors.Is(err, snapshot.ErrNotFound) {
				t.Errorf("Delete(%q): %v, want ErrNotFound", id, err)
			}
		}
		if _, err := n.s.Create(ctx, "no-such-sandbox"); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("snapshot of an unknown sandbox: %v", err)
		}
		gone, err := n.m.Create(ctx, "", owned("alice"))
		if err != nil {
			t.Fatal(err)
		}
		if err := n.m.Delete(ctx, gone.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := n.s.Create(ctx, gone.ID()); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("snapshot of a deleted sandbox: %v, want ErrNotFound", err)
		}
	})

	t.Run("restore races delete", func(t *testing.T) {
		victim, err := n.s.Create(ctx, sb.ID())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var rsb sandbox.Sandbox
		var rerr, derr error
		wg.Go(func() { rsb, _, rerr = n.s.Restore(ctx, victim.ID, nil) })
		wg.Go(func() {
			for {
				derr = n.s.Delete(ctx, victim.ID)
				if !errors.Is(derr, snapshot.ErrBusy) {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		wg.Wait()
		if derr != nil {
			t.Fatalf("delete: %v", derr)
		}
		switch {
		case rerr == nil:
			if s := readFile(t, rsb, "/workspace/d/a.txt"); s != "kept" {
				t.Fatalf("restore that won the race: %q", s)
			}
			_ = n.m.Delete(ctx, rsb.ID())
		case !errors.Is(rerr, snapshot.ErrNotFound):
			t.Fatalf("restore that lost the race: %v, want ErrNotFound", rerr)
		}
		if _, err := n.s.Get(ctx, victim.ID); !errors.Is(err, snapshot.ErrNotFound) {
			t.Fatalf("deleted snapshot: %v", err)
		}
	})

	t.Run("kill -9 and restart", func(t *testing.T) {
		// What a daemon killed between the files and the record leaves.
		for _, d := range []string{".tmp-" + snapshot.NewID(), snapshot.NewID()} {
			if err := os.MkdirAll(filepath.Join(data, "snapshots", d, sandbox.SnapshotWorkspace), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		n.stop()
		n2 := start(t, st, data, cfg)
		ents, err := os.ReadDir(filepath.Join(data, "snapshots"))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := n2.s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != len(recs) {
			t.Fatalf("after a restart: %d snapshot dirs for %d records", len(ents), len(recs))
		}
		r, _, err := n2.s.Restore(ctx, rec.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s := readFile(t, r, "/workspace/d/a.txt"); s != "kept" {
			t.Fatalf("restore after a restart: %q", s)
		}
	})
}
