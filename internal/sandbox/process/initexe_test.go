//go:build linux

package process

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	data, err := initExe.ReadFile(initExeName)
	if err != nil {
		t.Fatalf("%v: %v", errNoInitExe, err)
	}
	want, err := srcsum.Sum("sbinit")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(embeddedInitSum()); len(got) == 0 || got[0] != want {
		t.Fatalf("the embedded init was built from other sbinit sources (record %q, sources %q): run go generate ./internal/sandbox/process", got, want)
	}
	if err := checkInitExe(data, embeddedInitSum()); err != nil {
		t.Fatal(err)
	}
}

// TestCheckInitExeClass: an embedded init that does not match this daemon
// (other sources, another platform or toolchain, no record, not an ELF
// executable for this machine) is refused, so the spawner re-executes the
// daemon binary instead of running a stale or foreign init in every
// sandbox.
func TestCheckInitExeClass(t *testing.T) {
	data, err := initExe.ReadFile(initExeName)
	if err != nil {
		t.Skip(errNoInitExe)
	}
	f := strings.Fields(embeddedInitSum())
	if len(f) != 3 {
		t.Fatalf("record %q", embeddedInitSum())
	}
	rec := func(i int, v string) string {
		g := slices.Clone(f)
		g[i] = v
		return strings.Join(g, " ")
	}
	other := runtime.GOOS + "/arm64"
	if runtime.GOARCH == "arm64" {
		other = runtime.GOOS + "/amd64"
	}
	foreign := slices.Clone(data)
	foreign[18], foreign[19] = 0xff, 0x7f // e_machine: no such machine
	for name, c := range map[string]struct {
		data   []byte
		record string
	}{
		"no record":         {data, ""},
		"old record format": {data, f[0]},
		"other sources":     {data, rec(0, strings.Repeat("0", 64))},
		"other platform":    {data, rec(1, other)},
		"other toolchain":   {data, rec(2, "go1.0")},
		"not ELF":           {[]byte("#!/bin/sh\nexit 0\n"), embeddedInitSum()},
		"other machine":     {foreign, embeddedInitSum()},
		"truncated":         {data[:64], embeddedInitSum()},
	} {
		if err := checkInitExe(c.data, c.record); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := checkInitExe(data, embeddedInitSum()); err != nil {
		t.Fatalf("the current init refused: %v", err)
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
// binary as the init. Under -race that init is race-built (the embedded one
// never is), so the init's concurrent paths are exercised here: execs,
// background starts, process lists and signals at once.
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
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			var out bytes.Buffer
			word := "w" + strconv.Itoa(i)
			if code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "echo", Args: []string{word}}, &out, &out); err != nil || code != 0 || strings.TrimSpace(out.String()) != word {
				t.Errorf("exec: %d %v %q", code, err, out.String())
			}
			pid, err := sb.Start(t.Context(), sandbox.ExecSpec{Cmd: "sleep", Args: []string{"30"}})
			if err != nil {
				t.Errorf("start: %v", err)
				return
			}
			if _, err := sb.Processes(t.Context()); err != nil {
				t.Errorf("processes: %v", err)
			}
			if err := sb.Signal(t.Context(), pid, syscall.SIGKILL); err != nil {
				t.Errorf("signal %d: %v", pid, err)
			}
		})
	}
	wg.Wait()
}

// memfdOf returns data in a memfd made with flags (the test closes it).
func memfdOf(t *testing.T, data []byte, flags int) *os.File {
	t.Helper()
	fd, err := unix.MemfdCreate("probe-test", unix.MFD_CLOEXEC|flags)
	if err != nil {
		t.Skipf("memfd_create: %v", err)
	}
	f := os.NewFile(uintptr(fd), "probe-test")
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestProbeInitExeClass: the embedded init is run once by hand before the
// spawner uses it; one this host will not execute (a memfd sealed
// against exec, as vm.memfd_noexec makes every memfd), one that is another
// program, or one that cannot start is refused there, so the tier falls
// back to re-executing the daemon instead of failing every create.
func TestProbeInitExeClass(t *testing.T) {
	data, err := initExe.ReadFile(initExeName)
	if err != nil {
		t.Skipf("no embedded init: %v", err)
	}
	if err := probeInitExe(memfdOf(t, data, unix.MFD_EXEC)); err != nil {
		t.Fatalf("the embedded init: %v", err)
	}
	if err := probeInitExe(memfdOf(t, data, unix.MFD_NOEXEC_SEAL)); err == nil {
		t.Fatal("a memfd sealed against exec passed the probe")
	}
	trueBin, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := probeInitExe(memfdOf(t, trueBin, unix.MFD_EXEC)); err == nil {
		t.Fatal("another program (exit 0) passed the probe")
	}
	script := []byte("#!/bin/sh\nexit 2\n")
	if err := probeInitExe(memfdOf(t, script, unix.MFD_EXEC)); err == nil {
		t.Fatal("a program exiting 2 without the init's message passed the probe")
	}
	if err := probeInitExe(memfdOf(t, data[:len(data)/2], unix.MFD_EXEC)); err == nil {
		t.Fatal("a truncated init passed the probe")
	}
}

// TestSpawnerIsSmallInit: the spawner, which forks once per sandbox, is
// the small init's memfd too, not a copy of this (much larger) binary.
func TestSpawnerIsSmallInit(t *testing.T) {
	tier := newTestTier(t)
	pr, err := tier.Prepare(t.Context(), sandbox.TemplateHost)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Discard()
	sp, err := tier.spawn.running()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(sp.cmd.Process.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(exe, "/memfd:agentcloud-sandbox-init") {
		t.Fatalf("spawner runs %q, want the embedded small init's memfd", exe)
	}
}
