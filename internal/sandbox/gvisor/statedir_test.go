//go:build linux

package gvisor

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestStateDirClass: the tier's directory for a data directory is the
// same on every call (a restarted daemon finds the dead one's runsc root)
// and every socket path below it fits in sun_path, however long the data
// directory; different data directories never share one.
func TestStateDirClass(t *testing.T) {
	short := "/var/lib/agentcloud"
	if got := StateDir(short); got != short {
		t.Fatalf("short data dir: %q, want it as is", got)
	}
	long := "/" + strings.Repeat("d", 200)
	long2 := long + "x"
	a, b, c := StateDir(long), StateDir(long+"/"), StateDir(long2)
	if a != b {
		t.Fatalf("one data dir, two state dirs: %q %q", a, b)
	}
	if a == c {
		t.Fatalf("two data dirs share %q", a)
	}
	for _, d := range []string{a, c, StateDir("relative/dir")} {
		if !filepath.IsAbs(d) {
			t.Fatalf("%q: not absolute", d)
		}
		sock := filepath.Join(d, "gvisor", "bundles", randomID(), "egress", egressSocketName)
		if len(sock) > maxSocketPath {
			t.Fatalf("%q: %d bytes, over sun_path", sock, len(sock))
		}
	}
	edge := "/" + strings.Repeat("e", maxSocketPath-socketSuffix-1)
	if got := StateDir(edge); got != edge {
		t.Fatalf("a data dir whose sockets just fit: %q", got)
	}
	if got := StateDir(edge + "e"); got == edge+"e" {
		t.Fatalf("a data dir one byte too long kept: %q", got)
	}
}

// TestRunscArgsKeepSecurityFlags: the systrap wait strategy is the only
// thing fastPathOff changes; every call still carries the root, the empty
// network and (where runsc has it) the OCI seccomp profile.
func TestRunscArgsKeepSecurityFlags(t *testing.T) {
	if !fastPathOff(2) || fastPathOff(64) {
		t.Fatal("fast path: off on 2 CPUs, on with many")
	}
	for _, off := range []bool{false, true} {
		tier := &Tier{stateDir: "/r", platform: "systrap", ociSeccomp: true, noFastPath: off}
		args := strings.Join(tier.runscArgs("exec", "x"), " ")
		for _, want := range []string{"--root /r", "--network=none", "--platform=systrap", "--oci-seccomp"} {
			if !strings.Contains(args, want) {
				t.Fatalf("%q lacks %q", args, want)
			}
		}
		if strings.Contains(args, "--systrap-disable-fast-path") != off || !strings.HasSuffix(args, " exec x") {
			t.Fatalf("fast path off %v: %q", off, args)
		}
	}
}
