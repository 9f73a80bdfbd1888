package atomicfile

import (
	"path/filepath"
	"testing"
)

// TestLockClass: a held lock refuses a second taker at once (the same
// process through another file, as a second daemon would), and is free
// again after Unlock; Unlock of nil is a no-op; a path in a missing
// directory is an error naming it.
func TestLockClass(t *testing.T) {
	p := filepath.Join(t.TempDir(), "LOCK")
	f, err := Lock(p)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := Lock(p); err == nil {
		Unlock(g)
		t.Fatal("a held lock was taken twice")
	}
	Unlock(f)
	g, err := Lock(p)
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	Unlock(g)
	Unlock(nil)
	if _, err := Lock(filepath.Join(t.TempDir(), "missing", "LOCK")); err == nil {
		t.Fatal("lock in a missing directory")
	}
}
