package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/store"
)

// sessionsAgent answers hello on every path and writes one state key on POST.
const sessionsAgent = `export default {
  async fetch(request, env) {
    if (request.method === "POST") { await env.state.put("k", {v: 1}); }
    return new Response("hello");
  }
};`

// SessionsOptions configure Sessions.
type SessionsOptions struct {
	Target
	// Sessions to create (each writes state), then hibernate.
	Sessions int
	// Concurrency is the number of concurrent clients.
	Concurrency int
	// Activations is how many hibernated sessions to activate for the
	// activation latency.
	Activations int
	// Duration is how long to run warm requests (and each side of the
	// side-by-side throughput run).
	Duration time.Duration
	// LoadConcurrency is the connection count of the hello-world
	// throughput run (`wrk -c`); 0 means 32.
	LoadConcurrency int
	// Workerd is the workerd binary to compare against; "" looks for the
	// pinned npm install in the repository, then PATH.
	Workerd string
	// Hibernated measures only what many hibernated sessions cost (the
	// million-session run): every session is created and hibernated at
	// once, and the live, warm and throughput phases are left out.
	Hibernated bool
}

// SessionsResult is the result of Sessions (`agentcloud bench sessions`).
type SessionsResult struct {
	SessionsCreated         int     `json:"sessions_created"`
	CreateRatePerSec        float64 `json:"create_rate_per_sec"`
	WarmRequestP50Us        float64 `json:"warm_request_p50_us"`
	WarmRequestP99Us        float64 `json:"warm_request_p99_us"`
	RequestsPerSec          float64 `json:"requests_per_sec"`
	Concurrency             int     `json:"concurrency"`
	ActivateHibernatedP50Us float64 `json:"activate_hibernated_p50_us"`
	ActivateHibernatedP99Us float64 `json:"activate_hibernated_p99_us"`
	LiveSessionRSSKiB       float64 `json:"live_session_rss_kib"`
	// LiveSessionPSSKiB and LiveSessionPrivateKiB count a live session's
	// memory without the template pages it shares with every other
	// session of its agent, which RSS counts once per session mapping them:
	// PSS charges a shared page to its mappers in shares, private counts
	// what only one mapping holds.
	LiveSessionPSSKiB         float64 `json:"live_session_pss_kib"`
	LiveSessionPrivateKiB     float64 `json:"live_session_private_kib"`
	HibernatedSessionRAMBytes float64 `json:"hibernated_session_ram_bytes"`
	// HibernatedSessionReadCacheBytes is the part of
	// hibernated_session_ram_bytes in the store's read caches (recently
	// written records and heaps kept outside the Go heap; bounded, so it
	// shrinks per session as sessions grow past what the caches hold).
	HibernatedSessionReadCacheBytes float64 `json:"hibernated_session_read_cache_bytes"`
	HibernatedSessionDiskBytes      float64 `json:"hibernated_session_disk_bytes"`
	Errors                          int64   `json:"errors"`
	InProcess                       bool    `json:"in_process_daemon"`
	// Added for issue 15's table; the keys above stay as they were.
	WarmRequestC1P50Us   float64 `json:"warm_request_c1_p50_us"`
	WarmRequestC1P99Us   float64 `json:"warm_request_c1_p99_us"`
	HelloRPS             float64 `json:"hello_rps"`
	WorkerdHelloRPS      float64 `json:"workerd_hello_rps"`
	WorkerdRatio         float64 `json:"hello_rps_vs_workerd"`
	LoadConcurrency      int     `json:"load_concurrency"`
	Workerd              string  `json:"workerd,omitempty"`
	WorkerdSkipped       string  `json:"workerd_skipped,omitempty"`
	LoadErrors           int64   `json:"load_errors"`
	DaemonStartMs        float64 `json:"daemon_start_ms"`
	SessionsOnDisk       int     `json:"sessions_on_disk"`
	ActivateAfterStartMs float64 `json:"activate_after_start_ms"`
	DiskBytes            int64   `json:"disk_bytes"`
	RSSBytes             int64   `json:"rss_bytes"`
	LoadAverage          string  `json:"load_average"`
	RunSeconds           float64 `json:"run_seconds"`
	// Added for the million-session run (--hibernated).
	HibernatedOnly bool    `json:"hibernated_only"`
	CreateSeconds  float64 `json:"create_seconds"`
	// CreateCPUMs is the CPU time one creation took (in-process runs: the
	// daemon and the clients together), which load on the machine does
	// not inflate the way it inflates create_rate_per_sec.
	CreateCPUMs float64 `json:"create_cpu_ms_per_session"`
}

// sessionsRun is one run of Sessions.
type sessionsRun struct {
	SessionsOptions
	c    *client.Client
	ids  []string
	errs atomic.Int64
}

// maxErrLogs is how many failures a run describes on stderr (the rest are
// only counted): a million-session run should say why a call failed.
const maxErrLogs = 5

// fail counts a failure of what on session id and describes the first few.
func (r *sessionsRun) fail(what, id string, err error) {
	if n := r.errs.Add(1); n <= maxErrLogs {
		fmt.Fprintf(os.Stderr, "bench sessions: %s %s: %v\n", what, id, err)
	}
}

// Sessions measures session creation, warm requests, hibernation and
// activation of a small JS agent. Memory and disk per session are measured
// only in an in-process daemon.
func Sessions(ctx context.Context, opts SessionsOptions) (*SessionsResult, error) {
	if opts.Sessions < 1 || opts.Concurrency < 1 || opts.Activations < 1 || opts.Duration <= 0 {
		return nil, errors.New("bench sessions: Sessions, Concurrency, Activations and Duration must be positive")
	}
	n, err := connect(ctx, opts.Target, opts.Concurrency, func(cfg *config.Config) {
		cfg.SessionMemoryMiB = 1 << 16 // measure, don't evict
	})
	if err != nil {
		return nil, err
	}
	defer n.stop()
	t0 := time.Now()
	res := &SessionsResult{Concurrency: opts.Concurrency, InProcess: n.inProcess, LoadAverage: loadAverage(), HibernatedOnly: opts.Hibernated}
	r := &sessionsRun{SessionsOptions: opts, c: n.c, ids: make([]string, opts.Sessions)}
	if err := deploy(ctx, n.c, `{"name":"bench","entry":"agent.js","limits":{"idle_seconds":86400}}`, sessionsAgent); err != nil {
		return nil, err
	}
	for i := range r.ids {
		r.ids[i] = "s" + strconv.Itoa(i)
	}
	runtime.GC()
	rss0, heap0, disk0, rc0 := rssBytes(), heapBytes(), dirBytes(n.dir), store.ReadCacheBytes()
	mem0 := memRollup()
	liveN := min(opts.Sessions, 200)
	if opts.Hibernated {
		liveN = 0
	}
	r.create(ctx, res, liveN, rss0, mem0)
	if !opts.Hibernated {
		if err := r.live(ctx, res, n, liveN); err != nil {
			return nil, err
		}
	}
	if res.InProcess {
		// Hibernated sessions live in the store; what stays in RAM is Go
		// heap (indexes, caches), measured after a full GC, and the store's
		// read caches (memory outside the Go heap).
		runtime.GC()
		rc := store.ReadCacheBytes() - rc0
		res.HibernatedSessionRAMBytes = max(0, float64(heapBytes()-heap0+rc)/float64(opts.Sessions))
		res.HibernatedSessionReadCacheBytes = float64(rc) / float64(opts.Sessions)
		res.HibernatedSessionDiskBytes = float64(dirBytes(n.dir)-disk0) / float64(opts.Sessions)
	}

	// Activate hibernated sessions, one at a time.
	var lat []time.Duration
	for i := 0; i < opts.Activations && i < opts.Sessions; i++ {
		lat = append(lat, r.do(ctx, r.ids[i*opts.Sessions/min(opts.Activations, opts.Sessions)], "GET"))
	}
	res.ActivateHibernatedP50Us, res.ActivateHibernatedP99Us = pct(lat, 50), pct(lat, 99)
	if res.InProcess {
		if err := r.restart(ctx, res, n); err != nil {
			return nil, err
		}
	}
	res.Errors = r.errs.Load()
	res.RunSeconds = time.Since(t0).Seconds()
	return res, nil
}

// live measures warm requests and throughput, then hibernates the liveN
// sessions kept live.
func (r *sessionsRun) live(ctx context.Context, res *SessionsResult, n *node, liveN int) error {
	r.warm(ctx, res, liveN)
	res.WarmRequestC1P50Us, res.WarmRequestC1P99Us = r.warmOne(ctx, liveN)
	if err := r.throughput(ctx, res, n); err != nil {
		return err
	}
	parallel(r.Concurrency, liveN, func(i int) {
		if _, err := r.c.Hibernate(ctx, "bench", r.ids[i]); err != nil {
			r.fail("hibernate", r.ids[i], err)
		}
	})
	return nil
}

// deploy deploys a one-file JS agent.
func deploy(ctx context.Context, c *client.Client, manifest, js string) error {
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest), "agent.js": []byte(js)})
	if err != nil {
		return err
	}
	tgz, err := b.TarGz()
	if err != nil {
		return err
	}
	if _, err := c.Deploy(ctx, tgz); err != nil {
		return fmt.Errorf("deploy bench agent: %w", err)
	}
	return nil
}

// do calls session id and returns the latency (0 and an error counted on
// failure).
func (r *sessionsRun) do(ctx context.Context, id, method string) time.Duration {
	t0 := time.Now()
	resp, err := r.c.Call(ctx, "bench", id, method, "/", nil, nil)
	if err != nil {
		r.fail(method, id, err)
		return 0
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		r.fail(method, id, fmt.Errorf("status %d: %.300s", resp.StatusCode, body))
	}
	return time.Since(t0)
}

// create makes every session, each with state. The first liveN stay live
// to measure live RSS; the rest are hibernated right after creation so a
// large count fits in memory.
func (r *sessionsRun) create(ctx context.Context, res *SessionsResult, liveN int, rss0 int64, mem0 rollup) {
	cpu0 := cpuTime()
	t0 := time.Now()
	parallel(r.Concurrency, liveN, func(i int) { r.do(ctx, r.ids[i], "POST") })
	created, cpu := time.Since(t0), cpuTime()-cpu0
	debug.FreeOSMemory()
	if res.InProcess && liveN > 0 {
		res.LiveSessionRSSKiB = float64(rssBytes()-rss0) / float64(liveN) / 1024
		mem := memRollup()
		res.LiveSessionPSSKiB = float64(mem.pss-mem0.pss) / float64(liveN) / 1024
		res.LiveSessionPrivateKiB = float64(mem.private-mem0.private) / float64(liveN) / 1024
	}
	t0, cpu0 = time.Now(), cpuTime()
	parallel(r.Concurrency, r.Sessions-liveN, func(i int) {
		id := r.ids[liveN+i]
		r.do(ctx, id, "POST")
		if _, err := r.c.Hibernate(ctx, "bench", id); err != nil {
			r.fail("hibernate", id, err)
		}
	})
	created, cpu = created+time.Since(t0), cpu+cpuTime()-cpu0
	if res.InProcess {
		res.CreateCPUMs = float64(cpu.Microseconds()) / 1000 / float64(r.Sessions)
	}
	res.SessionsCreated = r.Sessions - int(r.errs.Load())
	res.CreateRatePerSec = float64(r.Sessions) / created.Seconds()
	res.CreateSeconds = created.Seconds()
}

// warmOne is warm at concurrency 1 (the table's warm request): p50, p99.
func (r *sessionsRun) warmOne(ctx context.Context, liveN int) (float64, float64) {
	var lat []time.Duration
	for deadline := time.Now().Add(r.Duration / 2); time.Now().Before(deadline); {
		lat = append(lat, r.do(ctx, r.ids[len(lat)%liveN], "GET"))
	}
	return pct(lat, 50), pct(lat, 99)
}

// throughput runs the hello-world worker on this daemon and on workerd side
// by side at LoadConcurrency connections.
func (r *sessionsRun) throughput(ctx context.Context, res *SessionsResult, n *node) error {
	res.LoadConcurrency = r.LoadConcurrency
	if res.LoadConcurrency <= 0 {
		res.LoadConcurrency = 32
	}
	if err := deploy(ctx, r.c, `{"name":"hello","entry":"agent.js","limits":{"idle_seconds":86400}}`, helloWorker); err != nil {
		return err
	}
	hdr := http.Header{"Authorization": {"Bearer " + n.token}}
	ours := loadTarget{header: hdr, url: func(i int) string {
		return r.c.Server() + "/agents/hello/sessions/h" + strconv.Itoa(i) + "/"
	}}
	bin := findWorkerd(r.Workerd)
	if bin == "" {
		res.WorkerdSkipped = "workerd not found: run scripts/deps.sh or pass --workerd"
		res.HelloRPS, res.LoadErrors = drive(ctx, ours, res.LoadConcurrency, r.Duration)
		return nil
	}
	u, stop, err := startWorkerd(ctx, bin)
	if err != nil {
		res.WorkerdSkipped = err.Error()
		res.HelloRPS, res.LoadErrors = drive(ctx, ours, res.LoadConcurrency, r.Duration)
		return nil
	}
	defer stop()
	res.Workerd = bin
	theirs := loadTarget{url: func(int) string { return u }}
	res.HelloRPS, res.WorkerdHelloRPS, res.LoadErrors = sideBySide(ctx, ours, theirs, res.LoadConcurrency, r.Duration)
	if res.WorkerdHelloRPS > 0 {
		res.WorkerdRatio = res.HelloRPS / res.WorkerdHelloRPS
	}
	return nil
}

// restart measures what N sessions on disk cost: disk and RSS, then the
// time a new daemon on the same data dir takes to start, and its first
// activation of a hibernated session.
func (r *sessionsRun) restart(ctx context.Context, res *SessionsResult, n *node) error {
	res.DiskBytes, res.RSSBytes, res.SessionsOnDisk = dirBytes(n.dir), rssBytes(), r.Sessions
	took, err := n.restart(ctx)
	if err != nil {
		return fmt.Errorf("restart daemon with %d sessions on disk: %w", r.Sessions, err)
	}
	res.DaemonStartMs = float64(took.Microseconds()) / 1000
	r.c = n.c
	res.ActivateAfterStartMs = float64(r.do(ctx, r.ids[r.Sessions-1], "GET").Microseconds()) / 1000
	return nil
}

// warm sends requests to Concurrency live sessions for Duration.
func (r *sessionsRun) warm(ctx context.Context, res *SessionsResult, liveN int) {
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(r.Duration)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range r.Concurrency {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				mine = append(mine, r.do(ctx, r.ids[w%liveN], "GET"))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.RequestsPerSec = float64(len(lat)) / time.Since(t0).Seconds()
	res.WarmRequestP50Us, res.WarmRequestP99Us = pct(lat, 50), pct(lat, 99)
}

// loadAverage is the 1, 5 and 15 minute load averages (the machine is
// shared: numbers say how loaded it was).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
