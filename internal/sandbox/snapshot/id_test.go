package snapshot

import (
	"strings"
	"testing"
)

// FuzzValidID: whatever ValidID accepts is a single safe path segment of
// the form NewID makes, and every NewID passes.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"", "..", "snap-", "snap-0123456789abcdef0123", "snap-0123456789ABCDEF0123", "snap-../../../etc/pa", NewID()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if !ValidID(id) {
			return
		}
		if len(id) != 25 || !strings.HasPrefix(id, "snap-") || strings.ContainsAny(id, "/.\x00") {
			t.Fatalf("ValidID(%q) accepted", id)
		}
	})
}

func TestNewIDValid(t *testing.T) {
	for range 100 {
		if id := NewID(); !ValidID(id) {
			t.Fatalf("NewID() = %q is not ValidID", id)
		}
	}
}
