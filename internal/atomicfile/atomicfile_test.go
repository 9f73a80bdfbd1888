package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
)

func TestWriteReplacesWithMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	for _, data := range []string{"first", "second, longer than the first"} {
		if err := atomicfile.Write(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "key")
	if err := atomicfile.Write(path, []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestLoadOrCreateClass: created once (0600, directory made), read back
// the same afterwards without calling create; a create error writes
// nothing; an unreadable path is an error, not replaced.
func TestLoadOrCreateClass(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "node.key")
	calls := 0
	create := func() ([]byte, error) { calls++; return []byte("secret"), nil }
	for range 2 {
		b, err := atomicfile.LoadOrCreate(path, create)
		if err != nil || string(b) != "secret" {
			t.Fatalf("got %q, %v", b, err)
		}
	}
	if calls != 1 {
		t.Fatalf("create called %d times", calls)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v", err)
	}
	failed := filepath.Join(t.TempDir(), "k")
	if _, err := atomicfile.LoadOrCreate(failed, func() ([]byte, error) { return nil, os.ErrInvalid }); err == nil {
		t.Fatal("a create error was not returned")
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Fatalf("a failed create left a file: %v", err)
	}
	dir := t.TempDir() // a directory where the file should be: unreadable as a file
	if _, err := atomicfile.LoadOrCreate(dir, create); err == nil {
		t.Fatal("a directory was read as a key")
	}
}
