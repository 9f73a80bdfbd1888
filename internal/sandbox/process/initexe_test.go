//go:build linux

package process

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/srcsum"
)

// TestEmbeddedInitIsCurrent: this build embeds the small init (go
// generate ./internal/sandbox/process, which make runs) and it was built
// from package sbinit's current sources; a stale init would speak an older
// control protocol than the host.
func TestEmbeddedInitIsCurrent(t *testing.T) {
	if _, err := initExe.ReadFile(initExeName); err != nil {
		t.Fatalf("%v: %v", errNoInitExe, err)
	}
	want, err := srcsum.Sum("sbinit")
	if err != nil {
		t.Fatal(err)
	}
	if got := embeddedInitSum(); got != want {
		t.Fatalf("the embedded init was built from other sbinit sources (sum %q, sources %q): run go generate ./internal/sandbox/process", got, want)
	}
}

// TestSmallInitClass: a sandbox's init runs the embedded small init from
// the spawner's sealed memfd (not this whole binary); the memfd cannot be
// written, grown or truncated, even by root on the host through the init's
// /proc/PID/exe; no init and no sandbox process holds it open; the
// sandbox user cannot read it through /proc/1/exe.
func TestSmallInitClass(t *testing.T) {
	tier := newTestTier(t)
	sb, err := sandbox.Create(t.Context(), tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	pid := strconv.Itoa(sb.(*box).pid)
	exe, err := os.Readlink("/proc/" + pid + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(exe, "/memfd:agentcloud-sandbox-init") {
		t.Fatalf("init runs %q, want the embedded small init's memfd", exe)
	}
	f, err := os.OpenFile("/proc/"+pid+"/exe", os.O_RDWR, 0)
	if err == nil {
		if _, err := f.WriteAt([]byte{0}, 0); !errors.Is(err, unix.EPERM) {
			t.Errorf("write to the init's memfd: %v, want EPERM (sealed)", err)
		}
		if err := f.Truncate(0); !errors.Is(err, unix.EPERM) {
			t.Errorf("truncate the init's memfd: %v, want EPERM (sealed)", err)
		}
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_FUTURE_WRITE); !errors.Is(err, unix.EPERM) {
			t.Errorf("change the memfd's seals: %v, want EPERM (F_SEAL_SEAL)", err)
		}
		f.Close()
	} else if !errors.Is(err, os.ErrPermission) && !errors.Is(err, unix.ETXTBSY) {
		t.Errorf("open the init's memfd for writing: %v", err)
	}
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name()); strings.Contains(l, "agentcloud-sandbox-init") {
			t.Errorf("init holds the init memfd as fd %s", e.Name())
		}
	}
	var out bytes.Buffer
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c",
		`ls -l /proc/self/fd/ 2>&1; head -c 4 /proc/1/exe >/dev/null 2>&1 && echo READ-INIT-EXE; true`}}, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exec: %d %v %s", code, err, out.String())
	}
	if s := out.String(); strings.Contains(s, "agentcloud-sandbox-init") || strings.Contains(s, "READ-INIT-EXE") {
		t.Fatalf("a sandbox process reaches the init binary:\n%s", s)
	}
	execEcho(t, sb, "small")
}

// TestSpawnerWithoutSmallInit: a build without the embedded init (go
// generate not run) still starts working sandboxes, re-executing this
// binary as the init.
func TestSpawnerWithoutSmallInit(t *testing.T) {
	tier := newTestTier(t)
	tier.spawn.mu.Lock()
	tier.spawn.initExeDone = true // as if initExeMemfd had found nothing
	tier.spawn.mu.Unlock()
	sb, err := sandbox.Create(t.Context(), tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(sb.(*box).pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/exe")
	if exe != self {
		t.Fatalf("init runs %q, want this binary %q", exe, self)
	}
	execEcho(t, sb, "big")
}
