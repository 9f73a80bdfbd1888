package sessionhttp

import (
	"net/http"
	"testing"
)

// TestCanonicalNameClass: the table of common names never changes what a
// name becomes: every entry, its other spellings and names outside it
// (malformed ones included) come out as http.CanonicalHeaderKey makes
// them; a common lower-case name costs no allocation.
func TestCanonicalNameClass(t *testing.T) {
	names := []string{"content-type", "Content-Type", "CONTENT-TYPE", "x-custom", "x multi", "content-type ", "", "é-x", "set-cookie", "etag", "www-authenticate"}
	for k := range canonicalNames {
		names = append(names, k)
	}
	for _, k := range names {
		if got, want := canonicalName(k), http.CanonicalHeaderKey(k); got != want {
			t.Errorf("canonicalName(%q) = %q, want %q", k, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = canonicalName("content-type") }); n != 0 {
		t.Fatalf("%v allocations for a common name", n)
	}
}
