//go:build linux

package gvisor

// Egress for gVisor sandboxes. runsc runs with --network=none, so a
// sandbox's 127.0.0.1 is gVisor's own netstack: no host network namespace
// to listen in. Instead each container gets a host directory mounted at
// /run/agentcloud, runsc may open host Unix sockets there (--host-uds=open),
// and a child of the container's pid 1 (initpy.go) is a small forwarder
// that accepts on 127.0.0.1:3128 inside and relays each connection to
// /run/agentcloud/proxy.sock, where the daemon serves the egress proxy for
// that sandbox (sandbox.EgressSocketer). It runs as a user of its own
// (initUID), so nothing the sandbox user runs can signal it, and starts
// with the container, in the warm pool.
//
// The forwarder is Python from the host template; without /usr/bin/python3
// the container keeps its plain keep-alive pid 1 and has no egress.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

const (
	// egressMount is where the per-container socket directory appears.
	egressMount = "/run/agentcloud"
	// egressSocketName is the daemon's listener in that directory.
	egressSocketName = "proxy.sock"
	// forwarderPython is the interpreter the forwarder runs with.
	forwarderPython = "/usr/bin/python3"
	// forwarderReady is printed by the forwarder, into the container's
	// run.log, once it listens.
	forwarderReady = "agentcloud-forwarder-ready"
)

// forwarderPy relays 127.0.0.1:3128 to the egress socket; pid 1 runs it
// in a child (initpy.go). It ignores termination signals and does not
// wait for children (it has none).
const forwarderPy = `import signal, socket, threading
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    u = socket.socket(socket.AF_UNIX)
    try:
        u.connect("` + egressMount + "/" + egressSocketName + `")
    except OSError:
        c.close()
        u.close()
        return
    t = threading.Thread(target=pipe, args=(u, c), daemon=True)
    t.start()
    pipe(c, u)
    t.join()
    c.close()
    u.close()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 3128))
l.listen(128)
print("` + forwarderReady + `", flush=True)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`

// forwarderAvailable reports whether the host template can run the
// forwarder.
func forwarderAvailable() bool {
	fi, err := os.Stat(forwarderPython)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// egressDir is the host side of a container's /run/agentcloud.
func (c *container) egressDir() string { return filepath.Join(c.bundle, "egress") }

// EgressSocket implements sandbox.EgressSocketer: the host path the daemon
// listens on for this sandbox's proxy traffic.
func (c *container) EgressSocket() (string, error) {
	if !c.tier.egress || c.noRelay {
		return "", fmt.Errorf("gvisor egress forwarder (needs %s in the template): %w", forwarderPython, sandbox.ErrUnsupported)
	}
	return filepath.Join(c.egressDir(), egressSocketName), nil
}

// waitForwarder waits until the container's relay listens, so that what
// runs in it can use the proxy. Exec and Start call it, not Activate: a
// fresh container's relay starts while the caller is busy between create
// and its first exec; a pooled one is long ready.
func (c *container) waitForwarder(ctx context.Context) error {
	if !c.tier.egress || c.noRelay || c.relayReady.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := filepath.Join(c.bundle, "run.log")
	for {
		if b, err := os.ReadFile(log); err == nil && bytes.Contains(b, []byte(forwarderReady)) {
			c.relayReady.Store(true)
			return nil
		}
		select {
		case <-ctx.Done():
			b, _ := os.ReadFile(log)
			return fmt.Errorf("gvisor egress forwarder did not start: %w: %s", ctx.Err(), lastLines(string(b), 3))
		case <-time.After(5 * time.Millisecond):
		}
	}
}
