//go:build linux

package process

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

func ppid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("no PPid for %d", pid)
	return 0
}

func execEcho(t *testing.T, sb sandbox.Sandbox, word string) {
	t.Helper()
	var out bytes.Buffer
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "echo", Args: []string{word}}, &out, &out)
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != word {
		t.Fatalf("exec in %s: code %d err %v out %q", sb.ID(), code, err, out.String())
	}
}

// TestSpawnerClass: sandbox inits are started by the tier's spawner, never
// forked from this (the daemon's) process; concurrent creates all get
// their own init; a spawner that dies leaves the sandboxes it started
// working and is replaced on the next create; Close stops it.
func TestSpawnerClass(t *testing.T) {
	tier := newTestTier(t)
	const n = 6
	sbs := make([]sandbox.Sandbox, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sbs[i], errs[i] = sandbox.Create(t.Context(), tier, "sp"+strconv.Itoa(i), sandbox.Spec{})
		})
	}
	wg.Wait()
	pids := map[int]bool{}
	for i, sb := range sbs {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		defer sb.Close()
		b := sb.(*box)
		if pids[b.pid] {
			t.Fatalf("two sandboxes share init %d", b.pid)
		}
		pids[b.pid] = true
		if p := ppid(t, b.pid); p == os.Getpid() {
			t.Fatalf("init %d is a child of this process, not of the spawner", b.pid)
		}
		execEcho(t, sb, "ok"+strconv.Itoa(i))
	}
	// No init holds another sandbox's control socket or stderr pipe (the
	// spawner had them all open): one socket each, its own.
	for _, sb := range sbs {
		pid := sb.(*box).pid
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		sockets := 0
		for _, e := range ents {
			if target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
				sockets++
			}
		}
		if sockets != 1 {
			t.Errorf("init %d holds %d sockets, want its control socket only", pid, sockets)
		}
	}
	sp, err := tier.spawn.running()
	if err != nil {
		t.Fatal(err)
	}
	spPid := sp.cmd.Process.Pid
	if p := ppid(t, sbs[0].(*box).pid); p != spPid {
		t.Fatalf("init's parent is %d, the spawner is %d", p, spPid)
	}

	// Kill the spawner: the running sandboxes are unaffected, the next
	// create starts a new one.
	if err := syscall.Kill(spPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sp.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the spawner's death went unnoticed")
	}
	execEcho(t, sbs[1], "still")
	sb, err := sandbox.Create(t.Context(), tier, "after", sandbox.Spec{})
	if err != nil {
		t.Fatalf("create after the spawner died: %v", err)
	}
	defer sb.Close()
	execEcho(t, sb, "again")
	sp2, err := tier.spawn.running()
	if err != nil || sp2 == sp || sp2.cmd.Process.Pid == spPid {
		t.Fatalf("no new spawner: %v", err)
	}
	for _, sb := range append(sbs, sb) {
		sb.Close()
	}
	tier.Close()
	if err := syscall.Kill(sp2.cmd.Process.Pid, 0); err == nil {
		t.Fatalf("spawner %d still running after Close", sp2.cmd.Process.Pid)
	}
}

// TestSpawnerBadRequestClass: requests the spawner cannot carry out (no
// fds, one fd, a uid base out of range, an unknown op) get an error reply,
// and the spawner keeps serving.
func TestSpawnerBadRequestClass(t *testing.T) {
	tier := newTestTier(t)
	sp, err := tier.spawn.running()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, tc := range map[string]struct {
		m     *message
		files []*os.File
	}{
		"no fds":       {&message{Op: sbinit.OpStart, UIDBase: uidBase}, nil},
		"one fd":       {&message{Op: sbinit.OpStart, UIDBase: uidBase}, []*os.File{r}},
		"uid base 0":   {&message{Op: sbinit.OpStart}, []*os.File{r, w}},
		"uid base big": {&message{Op: sbinit.OpStart, UIDBase: 1 << 31}, []*os.File{r, w}},
		"unknown op":   {&message{Op: "fork"}, nil},
	} {
		id := tier.spawn.nextID.Add(1)
		ch := make(chan startResult, 1)
		sp.mu.Lock()
		sp.calls[id] = ch
		sp.mu.Unlock()
		tc.m.ID = id
		if err := sp.ctl.Send(tc.m, tc.files...); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-ch:
			if res.err == nil {
				t.Errorf("%s: started init %d", name, res.proc.pid)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no reply", name)
		}
	}
	sb, err := sandbox.Create(t.Context(), tier, "ok", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	execEcho(t, sb, "fine")
}
