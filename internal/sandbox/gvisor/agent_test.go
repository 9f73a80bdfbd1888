//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestExecAgentClass: commands run through the container's exec agent
// (their parent is the agent, not a runsc exec) with the same results as
// runsc exec gave: stdout and stderr apart, stdin, exit codes and signals,
// environment and cwd, a timeout that kills the command's group, a missing
// program; and when the agent is killed from inside, or flooded with
// connections, commands still run.
func TestExecAgentClass(t *testing.T) {
	tier := newTestTier(t)
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{Env: map[string]string{"FOO": "bar"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	c := sb.(*container)
	if c.agent == nil || c.agent.pid <= 1 {
		t.Fatalf("no exec agent: %+v", c.agent)
	}
	run := func(es sandbox.ExecSpec) (string, string, int, error) {
		var out, errb bytes.Buffer
		code, err := sb.Exec(ctx, es, &out, &errb)
		return out.String(), errb.String(), code, err
	}
	sh := func(script string) sandbox.ExecSpec {
		return sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}}
	}
	out, _, code, err := run(sh(`echo $PPID; echo "$FOO"; pwd; id -u; grep -c 'NoNewPrivs:.1' /proc/self/status`))
	want := strconv.Itoa(c.agent.pid) + "\nbar\n" + sandbox.WorkspaceDir + "\n" + strconv.Itoa(sandbox.SandboxUID) + "\n1\n"
	if err != nil || code != 0 || out != want {
		t.Fatalf("through the agent: %q code=%d err=%v, want %q", out, code, err, want)
	}
	cases := []struct {
		name           string
		es             sandbox.ExecSpec
		stdout, stderr string
		code           int
		stdin          string
	}{
		{name: "streams", es: sh("echo out; echo err >&2; exit 3"), stdout: "out\n", stderr: "err\n", code: 3},
		{name: "stdin", es: sandbox.ExecSpec{Cmd: "cat"}, stdin: "hello stdin", stdout: "hello stdin"},
		{name: "signal", es: sh("kill -TERM $$"), code: 128 + 15},
		{name: "cwd", es: sandbox.ExecSpec{Cmd: "pwd", Cwd: "/tmp"}, stdout: "/tmp\n"},
		{name: "env", es: sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", "echo $X"}, Env: map[string]string{"X": "y z"}}, stdout: "y z\n"},
		{name: "big output", es: sh("head -c 300000 /dev/zero | tr '\\0' a"), stdout: strings.Repeat("a", 300000)},
	}
	for _, tc := range cases {
		es := tc.es
		if tc.stdin != "" {
			es.Stdin = strings.NewReader(tc.stdin)
		}
		o, e, code, err := run(es)
		if err != nil || code != tc.code || o != tc.stdout || e != tc.stderr {
			t.Errorf("%s: out=%.80q err=%q code=%d error=%v", tc.name, o, e, code, err)
		}
	}
	// A missing program fails as it did under runsc exec (the agent
	// declines and runsc exec reports it).
	if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/no/such/program"}, nil, nil); err == nil && code == 0 {
		t.Errorf("missing program: code=%d err=%v", code, err)
	}
	// A timeout kills the command and its background children.
	tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = sb.Exec(tctx, sh("sleep 100 & sleep 100"), nil, nil)
	tcancel()
	if !errors.Is(err, sandbox.ErrTimeout) {
		t.Errorf("timeout: %v", err)
	}
	waitNoProcess(t, sb, "sleep")
	// Connections from a program inside are bounded; commands still run.
	if out, _, code, err := run(sh(`python3 -c '
import socket
s = []
for i in range(50):
    c = socket.socket(socket.AF_UNIX)
    c.connect("/run/agentcloud/exec.sock")
    s.append(c)
print(len(s))'`)); err != nil || code != 0 || out != "50\n" {
		t.Errorf("connection flood: %q %d %v", out, code, err)
	}
	// The sandbox user can kill the agent; commands then use runsc exec.
	_, _, _, _ = run(sh("kill -9 " + strconv.Itoa(c.agent.pid)))
	for i := range 3 {
		if out, _, code, err := run(sh("echo alive")); err != nil || code != 0 || out != "alive\n" {
			t.Fatalf("after the agent died (%d): %q %d %v", i, out, code, err)
		}
	}
	if !c.agent.dead.Load() {
		t.Errorf("agent still taken for alive after kill")
	}
	// runsc exec's commands, like the agent's, cannot gain privileges.
	if out, _, code, err := run(sh("grep -E 'NoNewPrivs|CapEff' /proc/self/status")); err != nil || code != 0 ||
		!strings.Contains(out, "NoNewPrivs:\t1") || !strings.Contains(out, "CapEff:\t0000000000000000") {
		t.Errorf("runsc exec privileges: %q %d %v", out, code, err)
	}
}

// waitNoProcess polls (bounded) until no process named name is left.
func waitNoProcess(t *testing.T, sb sandbox.Sandbox, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ps, err := sb.Processes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		left := 0
		for _, p := range ps {
			if len(p.Cmdline) > 0 && strings.Contains(p.Cmdline[0], name) {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s processes left: %+v", left, name, ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestListAndStatClass: listing and stat work on every kind of mount in a
// gVisor sandbox (the read-only template, the /workspace and /tmp host
// mounts, /dev, /proc), through the shell tools and Python. Debian's 2022
// runsc fails them with "Invalid argument"; the pinned runsc does not.
func TestListAndStatClass(t *testing.T) {
	tier := newTestTier(t)
	if tier.platform != "systrap" {
		t.Skipf("runsc %s has no systrap platform (Debian's release, where ls/stat fail); install the pinned one with scripts/runsc.sh", tier.runsc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	for _, script := range []string{
		"touch /workspace/f /tmp/g && mkdir -p /workspace/d",
		"ls -la / /workspace /tmp /dev /usr/bin/python3 /etc/hostname",
		"stat / /workspace /workspace/f /workspace/d /tmp /tmp/g /dev/null /proc/self /usr/bin/python3",
		"find /workspace /tmp -maxdepth 2",
		`python3 -c 'import os; [os.stat(p) for p in ("/", "/workspace/f", "/tmp/g", "/usr")]; print(sorted(os.listdir("/workspace")))'`,
		"du -s /workspace /usr/lib/python3*/json",
	} {
		var out, errb bytes.Buffer
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}}, &out, &errb)
		if err != nil || code != 0 {
			t.Errorf("%s: code=%d err=%v stderr=%q", script, code, err, errb.String())
		}
	}
}
