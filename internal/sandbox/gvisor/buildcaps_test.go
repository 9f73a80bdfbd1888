//go:build linux

package gvisor

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

// TestBuildCapsMatchProcessTier: a build step has the same capabilities
// on both tiers (sbinit.BuildCaps on the process tier).
func TestBuildCapsMatchProcessTier(t *testing.T) {
	num := map[string]uintptr{"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
		"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_SETUID": unix.CAP_SETUID,
		"CAP_SETGID": unix.CAP_SETGID, "CAP_KILL": unix.CAP_KILL}
	if len(buildCaps) != len(sbinit.BuildCaps) {
		t.Fatalf("gvisor %v, process tier %v", buildCaps, sbinit.BuildCaps)
	}
	for i, name := range buildCaps {
		if n, ok := num[name]; !ok || n != sbinit.BuildCaps[i] {
			t.Fatalf("gvisor build cap %d is %s, process tier's %d", i, name, sbinit.BuildCaps[i])
		}
	}
}
