//go:build linux

package sandboxstate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/store"
)

// TestSandboxForkPooledClass: fork copies taken from the warm pool (and,
// past its size, prepared cold) of two tenants' sandboxes see only their
// source's files and their own writes: not another copy's, not the other
// tenant's, not a deleted copy's that an earlier fork made, and not the
// source's later writes; each copy writes as its own user.
func TestSandboxForkPooledClass(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const poolSize = 3
	n := start(t, st, filepath.Join(t.TempDir(), "sandboxes"), sandbox.PoolConfig{Tier: sandbox.TierProcess, Size: poolSize, Refill: 2})
	waitPool := func() {
		t.Helper()
		for {
			if ready, _ := n.m.PoolReady(sandbox.TierProcess, ""); ready >= poolSize {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	srcA, err := n.m.Create(ctx, "", sandbox.Spec{Labels: map[string]string{sandbox.LabelOwner: "spiffe://t/a"}})
	if err != nil {
		t.Fatal(err)
	}
	srcB, err := n.m.Create(ctx, "", sandbox.Spec{Labels: map[string]string{sandbox.LabelOwner: "spiffe://t/b"}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, srcA, "mkdir d && echo a-secret > d/f")
	run(t, srcB, "echo b-secret > g")
	for round := range 2 {
		waitPool()
		forksA, err := n.m.Fork(ctx, srcA.ID(), poolSize+2)
		if err != nil {
			t.Fatalf("round %d: fork A: %v", round, err)
		}
		run(t, srcA, "echo later > d/f")
		waitPool()
		forksB, err := n.m.Fork(ctx, srcB.ID(), 2)
		if err != nil {
			t.Fatalf("round %d: fork B: %v", round, err)
		}
		for i, f := range forksA {
			want := "d\na-secret\n1000\n"
			if got := run(t, f, "ls; cat d/f; stat -c %u d/f"); got != want {
				t.Fatalf("round %d: copy %d of A sees %q, want %q", round, i, got, want)
			}
			run(t, f, "echo "+f.ID()+" > mine && echo "+f.ID()+" > d/f")
		}
		for i, f := range forksA {
			if got := run(t, f, "ls; cat d/f mine"); got != "d\nmine\n"+f.ID()+"\n"+f.ID()+"\n" {
				t.Fatalf("round %d: copy %d of A sees %q", round, i, got)
			}
		}
		for i, f := range forksB {
			if got := run(t, f, "ls -A; cat g"); got != "g\nb-secret\n" {
				t.Fatalf("round %d: copy %d of B sees %q", round, i, got)
			}
		}
		if got := run(t, srcA, "cat d/f; ls"); got != "later\nd\n" {
			t.Fatalf("round %d: source A changed by its copies: %q", round, got)
		}
		for _, f := range append(forksA, forksB...) {
			if err := n.m.Delete(ctx, f.ID()); err != nil {
				t.Fatal(err)
			}
		}
		run(t, srcA, "echo a-secret > d/f")
	}
	if got := run(t, srcB, "ls -A"); strings.TrimSpace(got) != "g" {
		t.Fatalf("source B changed: %q", got)
	}
}

// TestSandboxForkNoOverlayClass: where fork overlays cannot be mounted (a
// data dir on overlayfs, as in a container without a volume: overlayfs
// refuses an upper dir there) a fork still works: its copies get the
// source's files copied, every one of them, none with an empty workspace.
func TestSandboxForkNoOverlayClass(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(base, "m")
	if err := unix.Mount("agentcloud-test", m, "overlay", 0, "lowerdir="+base+"/l,upperdir="+base+"/u,workdir="+base+"/w"); err != nil {
		t.Skipf("overlay: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(m, unix.MNT_DETACH) })
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := start(t, st, filepath.Join(m, "sandboxes"))
	src, err := n.m.Create(ctx, "", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, src, "echo seed > f")
	forks, err := n.m.Fork(ctx, src.ID(), 3)
	if err != nil || len(forks) != 3 {
		t.Fatalf("fork: %d copies, %v", len(forks), err)
	}
	for i, f := range forks {
		if got := run(t, f, "cat f; echo mine > f"); got != "seed\n" {
			t.Errorf("copy %d sees %q", i, got)
		}
	}
	if got := run(t, src, "cat f"); got != "seed\n" {
		t.Errorf("source changed by its copies: %q", got)
	}
}
