//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestProcessesRestoredClass: processes that commands left running (one
// started in the background by Start, one an orphan of an Exec's shell)
// are in a memory snapshot, and a restore and each fork has them, with the
// same pids; the restored exec agent (same pid as in the original)
// connects to the new container's socket and runs its commands; the
// original runs on with its agent. Before the agent was pid 1's child,
// runsc restored neither the agent nor those processes.
func TestProcessesRestoredClass(t *testing.T) {
	tier := newTestTier(t)
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := newTestManager(t, tier)
	sb, err := m.Create(ctx, "", sandbox.Spec{Tier: sandbox.TierGVisor})
	if err != nil {
		t.Fatal(err)
	}
	sh := func(sb sandbox.Sandbox, script string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}}, &out, &errb)
		if err != nil || code != 0 {
			t.Fatalf("%s: %d %v %q", script, code, err, errb.String())
		}
		return out.String()
	}
	agentPID := strings.TrimSpace(sh(sb, "echo $PPID"))
	if n, _ := strconv.Atoi(agentPID); n <= 1 {
		t.Fatalf("command's parent %q: not the exec agent", agentPID)
	}
	started, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "sleep", Args: []string{"1001"}})
	if err != nil {
		t.Fatal(err)
	}
	sh(sb, "sleep 1002 >/dev/null 2>&1 &")
	// A process whose state is only in memory: it answers with what it
	// counted before the snapshot.
	if _, err := sb.Start(ctx, sandbox.ExecSpec{Cmd: "python3", Args: []string{"-c",
		"import os, time\nn = 0\nwhile True:\n    n += 1\n    if os.path.exists('/tmp/ask'):\n        open('/tmp/answer', 'w').write(str(n))\n        os.remove('/tmp/ask')\n    time.sleep(0.05)\n"}}); err != nil {
		t.Fatal(err)
	}
	// sleepPIDs lists the pids of the sandbox's sleep processes (runsc ps
	// shows no arguments).
	sleepPIDs := func(what string, sb sandbox.Sandbox) []int {
		t.Helper()
		ps, err := sb.Processes(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var pids []int
		for _, p := range ps {
			if len(p.Cmdline) > 0 && p.Cmdline[0] == "sleep" {
				pids = append(pids, p.PID)
			}
		}
		slices.Sort(pids)
		return pids
	}
	before := sleepPIDs("before the snapshot", sb)
	if len(before) != 2 || !slices.Contains(before, started) {
		t.Fatalf("sleeps %v before the snapshot, want 2 with %d", before, started)
	}
	sleeps := func(what string, sb sandbox.Sandbox) {
		t.Helper()
		if got := sleepPIDs(what, sb); !slices.Equal(got, before) {
			t.Errorf("%s: sleep pids %v, want %v", what, got, before)
		}
	}
	dir := filepath.Join(t.TempDir(), "snap")
	res, err := m.Snapshot(ctx, sb.ID(), dir)
	if err != nil || !res.Memory {
		t.Fatalf("snapshot: %+v %v", res, err)
	}
	// The restored agent runs the commands: the same pid as the original's.
	works := func(what string, sb sandbox.Sandbox) {
		t.Helper()
		for i := range 3 {
			if got := strings.TrimSpace(sh(sb, "echo $PPID")); got != agentPID {
				t.Errorf("%s: command %d ran under %q, want the agent %s", what, i, got, agentPID)
			}
		}
		sleeps(what, sb)
		if err := sb.WriteFile(ctx, "/tmp/ask", strings.NewReader(""), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var b bytes.Buffer
			if err := sb.ReadFile(ctx, "/tmp/answer", &b); err == nil && b.Len() > 0 {
				if n, _ := strconv.Atoi(b.String()); n < 1 {
					t.Errorf("%s: counter answered %q", what, b.String())
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the counting process never answered", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	works("original after the snapshot", sb)
	r, err := m.Restore(ctx, res.Spec, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	works("restored", r)
	// A process restored is a process like any other: it can be signalled.
	if err := r.Signal(ctx, started, os.Kill); err != nil {
		t.Errorf("signal restored process: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps, err := r.Processes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ps, func(p sandbox.Process) bool { return p.PID == started }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("signalled process %d still there", started)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := m.Delete(ctx, r.ID()); err != nil {
		t.Fatal(err)
	}
	forks, err := m.Fork(ctx, sb.ID(), 2)
	if err != nil || len(forks) != 2 {
		t.Fatalf("fork: %d %v", len(forks), err)
	}
	for i, f := range forks {
		works("fork "+strconv.Itoa(i), f)
		if err := m.Delete(ctx, f.ID()); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Delete(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
}
