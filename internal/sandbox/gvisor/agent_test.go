//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/testdeps"
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
	agentPID := c.agentPID(ctx)
	if c.agent == nil || agentPID <= 1 {
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
	// The agent is pid 1's child; what it runs has no capabilities, not
	// even in its bounding set, and cannot gain privileges.
	out, _, code, err := run(sh(`echo $PPID; echo "$FOO"; pwd; id -u; grep -c 'NoNewPrivs:.1' /proc/self/status; grep PPid /proc/$PPID/status; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | grep -vc '0000000000000000$'; true`))
	want := strconv.Itoa(agentPID) + "\nbar\n" + sandbox.WorkspaceDir + "\n" + strconv.Itoa(sandbox.SandboxUID) + "\n1\nPPid:\t1\n0\n"
	if err != nil || code != 0 || out != want {
		t.Fatalf("through the agent: %q code=%d err=%v, want %q", out, code, err, want)
	}
	// pid 1, its relay and the agent are not the sandbox's processes, and
	// nothing but the sandbox user's own processes takes its signals.
	if ps, err := sb.Processes(ctx); err != nil || len(ps) != 0 {
		t.Errorf("processes of an idle sandbox: %+v %v", ps, err)
	}
	if out, _, code, err := run(sh(`for p in $(ls /proc | grep -E '^[0-9]+$'); do [ "$(stat -c %u /proc/$p)" != "$(id -u)" ] && kill -0 $p 2>/dev/null && echo $p; done; true`)); err != nil || code != 0 || out != "" {
		t.Errorf("processes of other users the sandbox user can signal: %q %d %v", out, code, err)
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
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
		// Both pipes full at once: the agent's one loop must keep
		// reading the command's output while its stdin waits.
		{name: "big stdin echoed", es: sandbox.ExecSpec{Cmd: "cat"}, stdin: big, stdout: big},
		// A command that closed its output still has its exit code.
		{name: "outputs closed", es: sh("exec >&- 2>&-; sleep 0.3; exit 4"), code: 4},
		// The agent serves a command in one thread (its main thread
		// keeps the idle connection): no pump threads to start per command.
		{name: "agent threads", es: sh("ls /proc/$PPID/task | wc -l"), stdout: "2\n"},
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
	// The sandbox user can kill the agent: commands still run, and pid 1
	// starts a new agent, which takes them back.
	_, _, _, _ = run(sh("kill -9 " + strconv.Itoa(agentPID)))
	for i := range 3 {
		if out, _, code, err := run(sh("echo alive")); err != nil || code != 0 || out != "alive\n" {
			t.Fatalf("after the agent died (%d): %q %d %v", i, out, code, err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _, code, err := run(sh("echo $PPID"))
		if err != nil || code != 0 {
			t.Fatalf("waiting for a new agent: %q %d %v", out, code, err)
		}
		if ppid, _ := strconv.Atoi(strings.TrimSpace(out)); ppid > 1 && ppid != agentPID && ppid == c.agentPID(ctx) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new agent took the commands back (last parent %q)", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// An agent that cannot connect (the daemon stopped listening) is
	// dead: commands go through runsc exec (no parent in the sandbox).
	c.agent.ln.Close()
	_, _, _, _ = run(sh("kill -9 $PPID"))
	for i := range 3 {
		if out, _, code, err := run(sh("echo $PPID")); err != nil || code != 0 || out != "0\n" {
			t.Fatalf("after the agent died for good (%d): parent %q %d %v, want 0 (runsc exec)", i, out, code, err)
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
		testdeps.Missing(t, "runsc %s has no systrap platform (Debian's release, where ls/stat fail); install the pinned one with scripts/runsc.sh", tier.runsc)
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

// impostorPy, run in a sandbox, takes connections to the sandbox's exec
// socket as an agent would and appends whatever arrives on them to
// /tmp/stolen.
const impostorPy = `import socket, threading, time
def grab():
    while True:
        c = socket.socket(socket.AF_UNIX)
        try:
            c.connect("/run/agentcloud/exec.sock")
        except OSError:
            time.sleep(0.05)
            continue
        open("/tmp/ready", "w").close()
        d = c.recv(65536)
        with open("/tmp/stolen", "ab") as f:
            f.write(d)
        c.close()
for i in range(8):
    threading.Thread(target=grab).start()
`

// TestAgentImpostorClass: a program in one sandbox that impersonates the
// exec agent (it takes the connections of its sandbox's exec socket) gets
// at most its own sandbox's commands, never another sandbox's, whose
// socket it cannot reach; both sandboxes' commands still run.
func TestAgentImpostorClass(t *testing.T) {
	tier := newTestTier(t)
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var sbs []sandbox.Sandbox
	for range 2 {
		sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		sbs = append(sbs, sb)
	}
	a, b := sbs[0], sbs[1]
	if _, err := a.Start(ctx, sandbox.ExecSpec{Cmd: "python3", Args: []string{"-c", impostorPy}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := a.Stat(ctx, "/tmp/ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the impostor never connected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	run := func(sb sandbox.Sandbox, script string, env map[string]string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", script}, Env: env}, &out, &errb)
		if err != nil || code != 0 {
			t.Fatalf("%s: %d %v %q", script, code, err, errb.String())
		}
		return out.String()
	}
	// The other sandbox's socket is not there to connect to.
	other := filepath.Join(b.(*container).egressDir(), agentSocketName)
	if out := run(a, `python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print("refused")' `+other, nil); out != "refused\n" {
		t.Errorf("sandbox a reaching b's exec socket %s: %q", other, out)
	}
	for i := range 6 {
		if out := run(a, "echo a-own-$I", map[string]string{"I": strconv.Itoa(i)}); out != "a-own-"+strconv.Itoa(i)+"\n" {
			t.Errorf("sandbox a's command %d: %q", i, out)
		}
		if out := run(b, `echo "$SECRET"`, map[string]string{"SECRET": "b-secret-env"}); out != "b-secret-env\n" {
			t.Errorf("sandbox b's command %d: %q", i, out)
		}
	}
	if _, err := b.Start(ctx, sandbox.ExecSpec{Cmd: "sleep", Args: []string{"b-secret-arg"}}); err != nil {
		t.Log(err) // sleep refuses the argument; only the request matters
	}
	var stolen bytes.Buffer
	if err := a.ReadFile(ctx, "/tmp/stolen", &stolen); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stolen.String(), "b-secret") {
		t.Errorf("the impostor in a got b's commands: %q", stolen.String())
	}
	if !strings.Contains(stolen.String(), "a-own") {
		t.Errorf("the impostor got none of its own sandbox's commands (%d bytes): the test did not exercise it", stolen.Len())
	}
}
