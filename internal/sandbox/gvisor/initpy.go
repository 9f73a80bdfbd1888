//go:build linux

package gvisor

// The container's pid 1 when the template has python3 and runsc has
// --host-uds: a small supervisor (initPy) that starts the egress relay
// (egress.go) and the exec agent (agent.go) as its children, restarts
// them when they exit, and reaps every orphan of the sandbox. Being in
// pid 1's tree is what lets runsc checkpoint/restore bring the agent and
// the commands it started back: runsc does not restore processes that
// runsc exec started (gVisor issue 11544), only pid 1's tree.
//
// pid 1 runs as root inside the sentry with three capabilities only
// (CAP_SETUID, CAP_SETGID, CAP_SETPCAP), so that it can start its
// children as other users; the sandbox user cannot signal, trace or read
// it. Each child drops every capability from its bounding set, then
// becomes its user: the relay initUID, the agent the sandbox user, with
// no capabilities and no_new_privs, as runsc exec would have started it.
// The program takes no input from the sandbox beyond its children's exit.

import (
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// initPy is pid 1. argv: relay source, agent source ("" for none), the
// agent's socket path, the relay's uid and gid, the agent's uid and gid.
// The modules the relay and the agent use are imported once, here: the
// children are forks and find them loaded. A child that cannot drop its
// privileges exits at once (status 126) and is not started again: the agent's commands then go through runsc exec.
// A child that exits otherwise is started again after a pause that grows
// while it keeps dying young.
const initPy = `import os, signal, sys, time
RELAY, AGENT, SOCK = sys.argv[1], sys.argv[2], sys.argv[3]
RUID, RGID, AUID, AGID = (int(x) for x in sys.argv[4:8])
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
import json, socket, struct, subprocess, threading
try:
    import ctypes
    prctl = ctypes.CDLL(None, use_errno=True).prctl
except Exception as e:
    prctl = None
    print("agentcloud-init: no ctypes, no exec agent:", e, flush=True)
def become(uid, gid):
    if prctl is None and uid == AUID:
        raise OSError("no ctypes to drop the bounding set")
    for cap in range(64 if prctl else 0):
        if prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:
            raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
def spawn(src, uid, gid, argv):
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        try:
            become(uid, gid)
        except Exception as e:
            print("agentcloud-init: drop privileges:", e, flush=True)
            os._exit(126)
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_DFL)
        os.chdir("/")
        sys.argv = argv
        exec(compile(src, argv[0], "exec"), {"__name__": "__main__"})
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException as e:
        print("agentcloud-init:", argv[0], e, flush=True)
    os._exit(code)
kids = {}
def start(kind):
    if kind == "relay":
        kids[spawn(RELAY, RUID, RGID, ["relay"])] = [kind, time.monotonic()]
    else:
        kids[spawn(AGENT, AUID, AGID, ["agent", SOCK])] = [kind, time.monotonic()]
pause = {"relay": 0.5, "agent": 0.5}
start("relay")
if AGENT and prctl is not None:
    start("agent")
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        time.sleep(1)
        continue
    except InterruptedError:
        continue
    k = kids.pop(pid, None)
    if k is None:
        continue
    kind, began = k
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 126:
        continue
    if time.monotonic() - began > 10:
        pause[kind] = 0.5
    time.sleep(pause[kind])
    pause[kind] = min(pause[kind] * 2, 30)
    start(kind)
`

// initProcess makes spec's process the supervisor (initPy): agent is the
// agent's source, "" when commands go through runsc exec only.
func initProcess(p *specs.Process, agent string) {
	caps := []string{"CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"}
	p.Args = []string{forwarderPython, "-I", "-S", "-c", initPy, forwarderPy, agent, egressMount + "/" + agentSocketName,
		strconv.Itoa(initUID), strconv.Itoa(initGID), strconv.Itoa(sandbox.SandboxUID), strconv.Itoa(sandbox.SandboxGID)}
	p.User = specs.User{UID: 0, GID: 0}
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	p.NoNewPrivileges = true
}
