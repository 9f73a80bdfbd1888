package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapTokenClass: the token is created private, read back the
// same, and only the whole token is valid; a world-readable or truncated
// token file stops start-up with the fix named.
func TestBootstrapTokenClass(t *testing.T) {
	dir := t.TempDir()
	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(tok, TokenPrefix) || !b.Valid(tok) {
		t.Fatalf("token %q not valid", tok)
	}
	for _, bad := range []string{"", TokenPrefix, tok[:len(tok)-1], tok + "x", strings.ToUpper(tok), strings.Repeat("a", 1<<16)} {
		if b.Valid(bad) {
			t.Errorf("%.20q accepted", bad)
		}
	}
	again, err := LoadOrCreate(dir)
	if err != nil || !again.Valid(tok) {
		t.Fatalf("reload: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, TokenFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable token: %v", err)
	}
	short := t.TempDir()
	if err := os.WriteFile(filepath.Join(short, TokenFile), []byte("acb_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(short); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short token: %v", err)
	}
}
