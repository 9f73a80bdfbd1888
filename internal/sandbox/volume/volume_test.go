package volume

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

const (
	alice = "spiffe://agentcloud.local/user/alice"
	bob   = "spiffe://agentcloud.local/user/bob"
)

// TestVolumeStoreClass: names are per owner (another tenant neither sees
// nor reaches a volume of the same name), the count and size quotas hold,
// a reopened store (a daemon after kill -9) has every acknowledged volume
// and its files and none of a half-made one, and delete refuses while a
// sandbox mounts it or a create that mounts it is under way.
func TestVolumeStoreClass(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, Limits{MaxBytes: 8 << 20, MaxPerOwner: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Create(alice, "data", 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.LimitBytes != 8<<20 {
		t.Errorf("default size %d", a.LimitBytes)
	}
	if _, err := s.Create(alice, "data", 0); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v", err)
	}
	if _, err := s.Get(bob, "data"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob reads alice's volume: %v", err)
	}
	if err := s.Delete(bob, "data"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob deletes alice's volume: %v", err)
	}
	if _, _, err := s.Hold(bob, []string{"data"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob mounts alice's volume: %v", err)
	}
	b, err := s.Create(bob, "data", 1<<20) // the same name, bob's own
	if err != nil {
		t.Fatal(err)
	}
	if b.Dir == a.Dir {
		t.Fatal("two owners share a directory")
	}
	for _, size := range []int64{-1, 1, 1<<20 - 1, 8<<20 + 1} {
		if _, err := s.Create(alice, "sized", size); !errors.Is(err, ErrQuota) {
			t.Errorf("size %d: %v", size, err)
		}
	}
	if _, err := s.Create(alice, "two", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(alice, "three", 0); !errors.Is(err, ErrQuota) {
		t.Errorf("third volume: %v", err)
	}
	if got := s.List(alice); len(got) != 2 || got[0].Name != "data" || got[1].Name != "two" {
		t.Errorf("alice lists %v", got)
	}
	if got := s.List(bob); len(got) != 1 {
		t.Errorf("bob lists %v", got)
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "f"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Mounted: delete refused; held by a create under way: refused too.
	mounted := map[string]bool{a.Dir: true}
	s.MountedBy = func(dir string) []string {
		if mounted[dir] {
			return []string{"sb-1"}
		}
		return nil
	}
	if err := s.Delete(alice, "data"); !errors.Is(err, ErrInUse) {
		t.Errorf("delete while mounted: %v", err)
	}
	_, release, err := s.Hold(alice, []string{"two"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(alice, "two"); !errors.Is(err, ErrInUse) {
		t.Errorf("delete while held: %v", err)
	}
	release()
	release() // twice is harmless
	if err := s.Delete(alice, "two"); err != nil {
		t.Errorf("delete after release: %v", err)
	}

	// A crash mid-create and mid-delete leaves dot dirs; reopening drops
	// them and keeps every acknowledged volume with its files.
	for _, d := range []string{".new-x/data", ".del-y/data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(root, Limits{MaxBytes: 8 << 20, MaxPerOwner: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(alice, "data")
	if err != nil || got.Dir != a.Dir {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	if b, err := os.ReadFile(filepath.Join(got.Dir, "f")); err != nil || string(b) != "kept" {
		t.Errorf("file after reopen: %q %v", b, err)
	}
	if _, err := s2.Get(alice, "two"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted volume after reopen: %v", err)
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 2 {
		t.Errorf("root holds %d entries after reopen, want 2", len(ents))
	}
	if used, err := Usage(got); err != nil || used <= 0 {
		t.Errorf("usage %d %v", used, err)
	}
}

// TestVolumeDeleteRacesMountClass: a delete racing creates that mount the
// volume either wins before the hold (the mount fails: not found) or is
// refused (in use); never both a successful hold and a successful delete.
func TestVolumeDeleteRacesMountClass(t *testing.T) {
	for i := 0; i < 50; i++ {
		s, err := Open(t.TempDir(), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(alice, "v", 1<<20); err != nil {
			t.Fatal(err)
		}
		var (
			wg         sync.WaitGroup
			held, dele error
			release    func()
		)
		wg.Add(2)
		go func() { defer wg.Done(); _, release, held = s.Hold(alice, []string{"v"}) }()
		go func() { defer wg.Done(); dele = s.Delete(alice, "v") }()
		wg.Wait()
		if held == nil && dele == nil {
			t.Fatal("a create held a volume that was deleted")
		}
		if held == nil {
			if !errors.Is(dele, ErrInUse) {
				t.Fatalf("delete: %v", dele)
			}
			release()
		} else if !errors.Is(held, ErrNotFound) {
			t.Fatalf("hold: %v", held)
		}
	}
}
