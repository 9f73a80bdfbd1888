//go:build linux

package process

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	MaybeRunInit()
	if os.Getenv(probeEnv) != "" {
		buildProbe()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func newTestTier(t testing.TB) *Tier {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("process tier unavailable: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tier.Close() })
	return tier
}
