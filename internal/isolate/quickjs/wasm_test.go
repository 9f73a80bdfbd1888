package quickjs

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"testing"
)

// TestPinned checks that the embedded wasm is the pinned release and that the
// fetch script pins the same digest and version.
func TestPinned(t *testing.T) {
	sum := sha256.Sum256(Wasm)
	if got := hex.EncodeToString(sum[:]); got != SHA256 {
		t.Fatalf("embedded quickjs.wasm sha256 = %s, want %s; re-run scripts/fetch-quickjs.sh", got, SHA256)
	}
	script, err := os.ReadFile("../../../scripts/fetch-quickjs.sh")
	if err != nil {
		t.Skipf("fetch script not found: %v", err)
	}
	for re, want := range map[string]string{
		`WASM_SHA256="([0-9a-f]+)"`: SHA256,
		`VERSION="([^"]+)"`:         Version,
		`PKG="([^"]+)"`:             Package,
	} {
		m := regexp.MustCompile(re).FindSubmatch(script)
		if m == nil || string(m[1]) != want {
			t.Errorf("scripts/fetch-quickjs.sh: %s does not pin %q", re, want)
		}
	}
}
