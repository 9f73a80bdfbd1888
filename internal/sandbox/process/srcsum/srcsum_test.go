package srcsum

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSumClass: the sum changes with any non-test source's contents or
// name, not with test files or other files; a directory without Go files,
// or one that does not exist, is an error rather than the sum of nothing.
func TestSumClass(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum := func() string {
		t.Helper()
		s, err := Sum(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, err := Sum(dir); err == nil {
		t.Fatal("sum of a directory without Go files")
	}
	if _, err := Sum(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("sum of a missing directory")
	}
	write("a.go", "package a\n")
	s0 := sum()
	write("a_test.go", "package a\n// test\n")
	write("README.md", "x")
	if sum() != s0 {
		t.Fatal("a test file or a non-Go file changed the sum")
	}
	write("a.go", "package a\n\n")
	if sum() == s0 {
		t.Fatal("changed contents kept the sum")
	}
	write("a.go", "package a\n")
	if err := os.Rename(filepath.Join(dir, "a.go"), filepath.Join(dir, "b.go")); err != nil {
		t.Fatal(err)
	}
	if sum() == s0 {
		t.Fatal("a renamed file kept the sum")
	}
}
