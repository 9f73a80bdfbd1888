//go:build linux

package sbinit

import (
	"slices"
	"testing"
)

// TestRaceEnv: re-executed copies keep the caller's race settings and do
// not sleep at exit unless the caller asked for it.
func TestRaceEnv(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "GORACE=atexit_sleep_ms=0",
		"halt_on_error=1":                "GORACE=halt_on_error=1 atexit_sleep_ms=0",
		"atexit_sleep_ms=50 log_path=/x": "GORACE=atexit_sleep_ms=50 log_path=/x",
	} {
		t.Setenv("GORACE", in)
		if got := RaceEnv(); !slices.Equal(got, []string{want}) {
			t.Errorf("GORACE=%q: %q, want %q", in, got, want)
		}
	}
}
