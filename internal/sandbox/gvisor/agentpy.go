//go:build linux

package gvisor

// agentPy is the exec agent (agent.go): pid 1 (initpy.go) runs it as the
// sandbox user, and it keeps one idle connection to the daemon's exec
// socket. A request on it (one JSON line: args, env, cwd, stdin, bg)
// starts the command in a session of its own; the agent connects a new
// idle connection at once and serves the request in one thread of its
// own: a selector loop over the command's stdout and stderr, its stdin
// (written without blocking, the connection not read while bytes wait),
// the connection and a pidfd of the command (a thread waiting for it
// where the sandbox's python has no os.pidfd_open). Threads cost the
// sentry a clone and a stack each; the thread per pipe and the control
// thread it used before added 2–5 ms to every exec (docs/PERFORMANCE.md).
// Frames both ways are a type byte, a 4-byte big-endian length and the
// payload:
//
//	agent → daemon: P pid, O stdout, E stderr, X exit code, F could not start
//	daemon → agent: I stdin bytes, C close stdin, K kill the process group
//
// The connection closing before X kills the process group (the daemon
// stopped waiting). A background command (bg) gets /dev/null for its
// standard streams and its connection ends after P; {"op": "pid"} is
// answered with the agent's own pid; {"op": "port", "port": N} connects
// to 127.0.0.1:N (or [::1]:N) inside the sandbox and relays the stream
// unframed after P (ports.go); {"op": "pty", ...} starts the command on a
// new pseudo-terminal (terminal.go). When its idle connection ends
// without a request (a restored sandbox's connection to the old daemon
// socket, or the daemon closing it), the agent connects again, at once
// the first time and then with a pause growing up to 1 s. Exit codes of
// signalled processes are 128+signal, as runsc exec reports them. After
// the command exits its output pipes get 250 ms to drain (a background
// child may hold them) and are then closed, as exec.Cmd's WaitDelay does
// on the runsc exec path.
const agentPy = `import fcntl, json, os, selectors, signal, socket, struct, subprocess, sys, termios, threading, time
S = sys.argv[1]
def killpg(pid):
    for _ in range(2000):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            return
def send(c, t, b):
    try:
        c.sendall(t + struct.pack(">I", len(b)) + b)
    except OSError:
        pass
def split_frames(b, handle):
    while len(b) >= 5 and len(b) >= 5 + struct.unpack(">I", b[1:5])[0]:
        n = struct.unpack(">I", b[1:5])[0]
        handle(b[:1], b[5:5 + n])
        b = b[5 + n:]
    return b
def finish(c, p, xfd, waiter, sel):
    rc = p.wait()
    if waiter:
        waiter.join()
    os.close(xfd)
    sel.close()
    if c.fileno() >= 0:
        send(c, b"X", str(128 - rc if rc < 0 else rc).encode())
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        c.close()
def exited(p):
    try:
        return os.pidfd_open(p.pid), None
    except (AttributeError, OSError):
        r, w = os.pipe()
        def wait():
            p.wait()
            os.close(w)
        t = threading.Thread(target=wait, daemon=True)
        t.start()
        return r, t
def serve(c):
    buf = b""
    try:
        while b"\n" not in buf:
            d = c.recv(65536)
            if not d:
                c.close()
                return
            buf += d
        line, buf = buf.split(b"\n", 1)
        req = json.loads(line)
        if req.get("op") == "pid":
            send(c, b"P", str(os.getpid()).encode())
            c.close()
            return
        if req.get("op") == "port":
            relay(c, req.get("port"), buf)
            return
        if req.get("op") == "pty":
            pty(c, req, buf)
            return
        bg = bool(req.get("bg"))
        out = subprocess.DEVNULL if bg else subprocess.PIPE
        env = dict(kv.split("=", 1) for kv in req["env"] if "=" in kv)
        p = subprocess.Popen(req["args"], env=env, cwd=req["cwd"], close_fds=True, start_new_session=True,
            stdin=subprocess.PIPE if req.get("stdin") and not bg else subprocess.DEVNULL,
            stdout=out, stderr=out)
    except Exception as e:
        send(c, b"F", str(e).encode())
        c.close()
        return
    send(c, b"P", str(p.pid).encode())
    if bg:
        c.close()
        p.wait()
        return
    run(c, p, buf)
def relay(c, port, buf):
    if type(port) is not int or not 0 < port < 65536:
        send(c, b"F", b"bad port")
        c.close()
        return
    s, err = None, "refused"
    for host in ("127.0.0.1", "::1"):
        try:
            s = socket.create_connection((host, port), timeout=10)
            break
        except OSError as e:
            err = e.strerror or str(e)
    if s is None:
        send(c, b"F", err.encode())
        c.close()
        return
    s.settimeout(None)
    send(c, b"P", b"")
    def pump(src, dst, first):
        try:
            if first:
                dst.sendall(first)
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for x in (src, dst):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
    t = threading.Thread(target=pump, args=(c, s, buf), daemon=True)
    t.start()
    pump(s, c, b"")
    t.join()
    s.close()
    c.close()
def ctty():
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
def killsession(sid):
    groups = {sid}
    for d in os.listdir("/proc"):
        try:
            f = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
            if int(f[3]) == sid:
                groups.add(int(f[2]))
        except (OSError, ValueError, IndexError):
            pass
    for g in groups:
        killpg(g)
CC = {signal.SIGINT: termios.VINTR, signal.SIGQUIT: termios.VQUIT, signal.SIGTSTP: termios.VSUSP}
def winsz(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
def pty(c, req, ctl):
    m = s = -1
    try:
        m, s = os.openpty()
        winsz(s, int(req["rows"]), int(req["cols"]))
        env = dict(kv.split("=", 1) for kv in req["env"] if "=" in kv)
        p = subprocess.Popen(req["args"], env=env, cwd=req["cwd"], stdin=s, stdout=s, stderr=s,
            close_fds=True, start_new_session=True, preexec_fn=ctty)
    except Exception as e:
        for fd in (m, s):
            if fd >= 0:
                os.close(fd)
        send(c, b"F", ("%d %s" % (getattr(e, "errno", None) or 0, e)).encode())
        c.close()
        return
    os.close(s)
    send(c, b"P", str(p.pid).encode())
    os.set_blocking(m, False)
    sel = selectors.DefaultSelector()
    xfd, waiter = exited(p)
    sel.register(xfd, selectors.EVENT_READ, "exit")
    sel.register(c, selectors.EVENT_READ, "ctl")
    sel.register(m, selectors.EVENT_READ, "pty")
    st = {"pending": b"", "ctl": ctl, "mev": selectors.EVENT_READ, "eof": False}
    def frame(t, d):
        try:
            if t == b"I" and len(st["pending"]) < 1 << 20:
                st["pending"] += d
            elif t == b"R" and len(d) == 4:
                winsz(m, *struct.unpack(">HH", d))
            elif t == b"S":
                sig = int(d)
                try:
                    a = termios.tcgetattr(m)
                    ch = a[6][CC[sig]] if sig in CC and a[3] & termios.ISIG else b"\0"
                except (OSError, KeyError, IndexError):
                    ch = b"\0"
                if ch != b"\0":
                    st["pending"] += ch
                else:
                    os.killpg(p.pid, sig)
            elif t == b"K":
                killsession(p.pid)
        except (OSError, ValueError):
            pass
    def frames():
        st["ctl"] = split_frames(st["ctl"], frame)
    def flush():
        try:
            while st["pending"]:
                st["pending"] = st["pending"][os.write(m, st["pending"]):]
        except BlockingIOError:
            pass
        except OSError:
            st["pending"] = b""
        want = 0 if st["eof"] else selectors.EVENT_READ
        if st["pending"]:
            want |= selectors.EVENT_WRITE
        if want != st["mev"]:
            if st["mev"] and want:
                sel.modify(m, want, "pty")
            elif want:
                sel.register(m, want, "pty")
            else:
                sel.unregister(m)
            st["mev"] = want
    frames()
    flush()
    deadline = None
    while not (deadline is not None and (st["eof"] or time.monotonic() >= deadline)):
        timeout = None if deadline is None else max(0, deadline - time.monotonic())
        for key, ev in sel.select(timeout):
            if key.data == "pty":
                if ev & selectors.EVENT_READ:
                    try:
                        d = os.read(m, 65536)
                    except BlockingIOError:
                        d = None
                    except OSError:
                        d = b""
                    if d:
                        send(c, b"O", d)
                    elif d is not None:
                        st["eof"] = True
                flush()
            elif key.data == "exit":
                sel.unregister(xfd)
                deadline = time.monotonic() + 0.25
            elif key.data == "ctl":
                try:
                    d = c.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    sel.unregister(c)
                    c.close()
                    killsession(p.pid)
                    continue
                st["ctl"] += d
                frames()
                flush()
    os.close(m)
    finish(c, p, xfd, waiter, sel)
def run(c, p, ctl):
    sel = selectors.DefaultSelector()
    outs = {p.stdout.fileno(): (b"O", p.stdout), p.stderr.fileno(): (b"E", p.stderr)}
    for fd in outs:
        sel.register(fd, selectors.EVENT_READ, "out")
    xfd, waiter = exited(p)
    sel.register(xfd, selectors.EVENT_READ, "exit")
    sel.register(c, selectors.EVENT_READ, "ctl")
    inp, pending, closing, reading, waiting = p.stdin, b"", False, True, False
    if inp:
        os.set_blocking(inp.fileno(), False)
    def stdin_close():
        nonlocal inp, waiting
        if waiting:
            sel.unregister(inp)
            waiting = False
        if inp:
            try:
                inp.close()
            except OSError:
                pass
            inp = None
    def frame(t, d):
        nonlocal pending, closing
        if t == b"I" and inp:
            pending += d
        elif t == b"C":
            closing = True
        elif t == b"K":
            killpg(p.pid)
    def ctl_frames():
        nonlocal ctl
        ctl = split_frames(ctl, frame)
    def stdin_flush():
        nonlocal pending, waiting
        try:
            while pending and inp:
                pending = pending[os.write(inp.fileno(), pending):]
        except BlockingIOError:
            pass
        except OSError:
            pending = b""
        if not inp:
            pending = b""
        if pending and not waiting:
            sel.register(inp, selectors.EVENT_WRITE, "in")
            waiting = True
        elif waiting and not pending:
            sel.unregister(inp)
            waiting = False
        if closing and not pending:
            stdin_close()
    ctl_frames()
    stdin_flush()
    deadline = None
    while deadline is None or (outs and time.monotonic() < deadline):
        if reading and pending:
            sel.unregister(c)
            reading = False
        elif not reading and not pending and deadline is None and c.fileno() >= 0:
            sel.register(c, selectors.EVENT_READ, "ctl")
            reading = True
        timeout = None if deadline is None else max(0, deadline - time.monotonic())
        for key, _ in sel.select(timeout):
            if key.data == "out":
                try:
                    d = os.read(key.fd, 65536)
                except OSError:
                    d = b""
                if d:
                    send(c, outs[key.fd][0], d)
                else:
                    sel.unregister(key.fd)
                    outs.pop(key.fd)[1].close()
            elif key.data == "exit":
                sel.unregister(xfd)
                deadline = time.monotonic() + 0.25
                if reading:
                    sel.unregister(c)
                    reading = False
            elif key.data == "in":
                stdin_flush()
            elif key.data == "ctl":
                try:
                    d = c.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    if reading:  # an exit in the same batch unregistered it
                        sel.unregister(c)
                    reading = False
                    c.close()
                    killpg(p.pid)
                    continue
                ctl += d
                ctl_frames()
                stdin_flush()
    for _, f in outs.values():
        f.close()
    stdin_close()
    finish(c, p, xfd, waiter, sel)
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
