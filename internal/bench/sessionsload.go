package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// helloWorker is the hello-world worker both sides serve in the
// side-by-side throughput run.
const helloWorker = `export default { async fetch(request) { return new Response("hello"); } };`

// workerdDefault is where scripts/deps.sh installs the pinned workerd from
// npm, relative to the repository root.
const workerdDefault = "internal/session/sessionhttp/testdata/workerd/node_modules/.bin/workerd"

// loadTarget is one side of a throughput run: the URL of connection i's
// requests and the headers they carry.
type loadTarget struct {
	url    func(i int) string
	header http.Header
}

// drive sends GETs on conc keep-alive connections for d (the load of
// `wrk -c conc`) and returns the 200 answers per second and the failures.
func drive(ctx context.Context, t loadTarget, conc int, d time.Duration) (float64, int64) {
	tr := &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var ok, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range conc {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, "GET", t.url(i), nil)
			if err != nil {
				bad.Add(1)
				return
			}
			req.Header = t.header
			for time.Now().Before(deadline) {
				resp, err := hc.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(t0).Seconds(), bad.Load()
}

// sideBySide drives a and b alternately (a, b, a, b; each half of d after a
// warm-up) so load from the rest of the machine hits both alike, and
// returns each one's requests per second and the failures.
func sideBySide(ctx context.Context, a, b loadTarget, conc int, d time.Duration) (ra, rb float64, bad int64) {
	drive(ctx, a, conc, d/4) // warm-up: workerd's JIT, our connection pools
	drive(ctx, b, conc, d/4)
	for range 2 {
		x, e1 := drive(ctx, a, conc, d/2)
		y, e2 := drive(ctx, b, conc, d/2)
		ra, rb, bad = ra+x/2, rb+y/2, bad+e1+e2
	}
	return ra, rb, bad
}

// workerd serves helloWorker with the workerd binary at bin on a loopback
// socket and returns its URL and a stop function.
func startWorkerd(ctx context.Context, bin string) (string, func(), error) {
	if out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("workerd %s cannot run: %w: %s", bin, err, bytes.TrimSpace(out))
	}
	tmp, err := os.MkdirTemp("", "agentcloud-bench-workerd-")
	if err != nil {
		return "", nil, err
	}
	const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .app)],
  sockets = [(name = "http", service = "main", http = ())],
);
const app :Workerd.Worker = (
  modules = [(name = "agent.js", esModule = embed "agent.js")],
  compatibilityDate = "2025-01-01",
);
`
	if err := errors.Join(os.WriteFile(filepath.Join(tmp, "agent.js"), []byte(helloWorker), 0o644),
		os.WriteFile(filepath.Join(tmp, "config.capnp"), []byte(config), 0o644)); err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	f, err := ln.(*net.TCPListener).File()
	addr := ln.Addr().String()
	_ = ln.Close()
	if err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	cmd := exec.Command(bin, "serve", "config.capnp", "--socket-fd", "http=3")
	cmd.Dir, cmd.ExtraFiles = tmp, []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	_ = f.Close()
	if err != nil {
		os.RemoveAll(tmp)
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(tmp)
	}
	u := "http://" + addr + "/"
	for t0 := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			return u, stop, nil
		}
		if time.Since(t0) > 60*time.Second || ctx.Err() != nil {
			stop()
			return "", nil, errors.New("workerd did not answer within 60s")
		}
	}
}

// findWorkerd is bin when set, else the pinned npm install in the
// repository (from the working directory) or workerd on PATH; "" if none.
func findWorkerd(bin string) string {
	if bin != "" {
		return bin
	}
	if _, err := os.Stat(workerdDefault); err == nil {
		p, _ := filepath.Abs(workerdDefault)
		return p
	}
	if p, err := exec.LookPath("workerd"); err == nil {
		return p
	}
	return ""
}
