//go:build linux

package gvisor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
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

// TestStateDirSymlinkAndRunClass: a data directory reached through a
// symlink gives the root of its real path (the mount table names real
// paths: a mount below a symlinked root went unseen and was removed
// through), and a long data directory's root is never put under a
// directory another user may write: StateDir then says "" (a directory of
// the run).
func TestStateDirSymlinkAndRunClass(t *testing.T) {
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(tmp, "real")
	link := filepath.Join(tmp, "link")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if got := StateDir(link); got != real || InRunDir(got) {
		t.Fatalf("symlinked data dir: %q, want its real path %q", got, real)
	}
	long := filepath.Join(real, strings.Repeat("d", 120))
	longLink := filepath.Join(link, strings.Repeat("d", 120))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	if a, b := StateDir(long), StateDir(longLink); a != b || a == "" {
		t.Fatalf("one long data dir by two paths: %q, %q", a, b)
	}
	old := runDir
	t.Cleanup(func() { runDir = old })
	for _, c := range []struct {
		name string
		mode os.FileMode
		link bool
	}{{"world-writable", 0o777, false}, {"group-writable", 0o770, false}, {"symlink", 0o755, true}} {
		dir := filepath.Join(tmp, c.name)
		if err := os.Mkdir(dir, c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, c.mode); err != nil {
			t.Fatal(err)
		}
		runDir = dir
		if c.link {
			runDir = filepath.Join(tmp, c.name+"-link")
			if err := os.Symlink(dir, runDir); err != nil {
				t.Fatal(err)
			}
		}
		if got := StateDir(long); got != "" {
			t.Errorf("%s run dir: %q, want \"\"", c.name, got)
		}
	}
	runDir = filepath.Join(tmp, "world-writable")
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		if got := StateDir(long); !strings.HasPrefix(got, runDir+"/agentcloud-gvisor/") || !InRunDir(got) {
			t.Errorf("root-only run dir: %q", got)
		}
	}
}

// TestCloseReportsContainersLeftClass: a tier closed while its runsc root
// still holds a container (a delete that failed) says so with
// ErrContainersLeft — the daemon then keeps the root for the next start
// to remove them — and a tier closed empty says nothing.
func TestCloseReportsContainersLeftClass(t *testing.T) {
	tier := newTestTier(t)
	sb, err := sandbox.Create(context.Background(), tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tier.Close(); !errors.Is(err, ErrContainersLeft) {
		t.Errorf("close with a container left: %v, want ErrContainersLeft", err)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tier.leftovers(); err != nil {
		t.Errorf("after the delete: %v", err)
	}
	empty := newTestTier(t)
	if err := empty.Close(); err != nil {
		t.Errorf("close of an empty tier: %v", err)
	}
}
