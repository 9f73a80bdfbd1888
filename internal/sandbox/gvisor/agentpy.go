//go:build linux

package gvisor

// agentPy is the exec agent (agent.go): pid 1 (initpy.go) runs it as the
// sandbox user, and it keeps one idle connection to the daemon's exec
// socket. A request on it (one JSON line: args, env, cwd, stdin, bg)
// starts the command in a session of its own; the agent connects a new
// idle connection at once and serves the request in threads. Frames both
// ways are a type byte, a 4-byte big-endian length and the payload:
//
//	agent → daemon: P pid, O stdout, E stderr, X exit code, F could not start
//	daemon → agent: I stdin bytes, C close stdin, K kill the process group
//
// The connection closing before X kills the process group (the daemon
// stopped waiting). A background command (bg) gets /dev/null for its
// standard streams and its connection ends after P; {"op": "pid"} is
// answered with the agent's own pid. When its idle connection ends
// without a request (a restored sandbox's connection to the old daemon
// socket, or the daemon closing it), the agent connects again, at once
// the first time and then with a pause growing up to 1 s. Exit codes of signalled processes are 128+signal, as
// runsc exec reports them. After the command exits its output pipes get
// 250 ms to drain (a background child may hold them), as exec.Cmd's
// WaitDelay does on the runsc exec path.
const agentPy = `import json, os, signal, socket, struct, subprocess, sys, threading, time
S = sys.argv[1]
def killpg(pid):
    for _ in range(2000):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            return
class Conn:
    def __init__(self, c):
        self.c, self.lock, self.done = c, threading.Lock(), False
    def send(self, t, b, last=False):
        with self.lock:
            if self.done:
                return
            try:
                self.c.sendall(t + struct.pack(">I", len(b)) + b)
            except OSError:
                pass
            if last:
                self.done = True
def pump(fd, k, t):
    try:
        while True:
            d = os.read(fd, 65536)
            if not d:
                break
            k.send(t, d)
    except OSError:
        pass
def serve(c):
    k = Conn(c)
    f = c.makefile("rb")
    try:
        req = json.loads(f.readline())
        if req.get("op") == "pid":
            k.send(b"P", str(os.getpid()).encode(), True)
            c.close()
            return
        bg = bool(req.get("bg"))
        out = subprocess.DEVNULL if bg else subprocess.PIPE
        env = dict(kv.split("=", 1) for kv in req["env"] if "=" in kv)
        p = subprocess.Popen(req["args"], env=env, cwd=req["cwd"], close_fds=True, start_new_session=True,
            stdin=subprocess.PIPE if req.get("stdin") and not bg else subprocess.DEVNULL,
            stdout=out, stderr=out)
    except Exception as e:
        k.send(b"F", str(e).encode(), True)
        c.close()
        return
    if bg:
        k.send(b"P", str(p.pid).encode(), True)
        c.close()
        p.wait()
        return
    k.send(b"P", str(p.pid).encode())
    pumps = [threading.Thread(target=pump, args=(p.stdout.fileno(), k, b"O"), daemon=True),
             threading.Thread(target=pump, args=(p.stderr.fileno(), k, b"E"), daemon=True)]
    for t in pumps:
        t.start()
    def ctl():
        try:
            while True:
                h = f.read(5)
                if len(h) < 5:
                    break
                d = f.read(struct.unpack(">I", h[1:])[0])
                if h[:1] == b"I" and p.stdin:
                    try:
                        os.write(p.stdin.fileno(), d)
                    except OSError:
                        pass
                elif h[:1] == b"C" and p.stdin:
                    try:
                        p.stdin.close()
                    except OSError:
                        pass
                elif h[:1] == b"K":
                    killpg(p.pid)
        except (OSError, ValueError):
            pass
        if not k.done:
            killpg(p.pid)
    threading.Thread(target=ctl, daemon=True).start()
    rc = p.wait()
    end = time.monotonic() + 0.25
    for t in pumps:
        t.join(max(0, end - time.monotonic()))
    k.send(b"X", str(128 - rc if rc < 0 else rc).encode(), True)
    try:
        c.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
fails = 0
while True:
    if fails:
        time.sleep(min(0.025 * 2 ** fails, 1))
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(S)
        first = c.recv(1, socket.MSG_PEEK)
    except OSError:
        first = b""
    if not first:
        c.close()
        fails = min(fails + 1, 8)
        continue
    fails = 0
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`
