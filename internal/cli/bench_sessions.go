package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/spf13/cobra"
)

// benchAgent answers hello on every path and writes one state key on /put.
const benchAgent = `export default {
  async fetch(request, env) {
    if (request.method === "POST") { await env.state.put("k", {v: 1}); }
    return new Response("hello");
  }
};`

// SessionsBench is the result of `agentcloud bench sessions`.
type SessionsBench struct {
	SessionsCreated            int     `json:"sessions_created"`
	CreateRatePerSec           float64 `json:"create_rate_per_sec"`
	WarmRequestP50Us           float64 `json:"warm_request_p50_us"`
	WarmRequestP99Us           float64 `json:"warm_request_p99_us"`
	RequestsPerSec             float64 `json:"requests_per_sec"`
	Concurrency                int     `json:"concurrency"`
	ActivateHibernatedP50Us    float64 `json:"activate_hibernated_p50_us"`
	ActivateHibernatedP99Us    float64 `json:"activate_hibernated_p99_us"`
	LiveSessionRSSKiB          float64 `json:"live_session_rss_kib"`
	HibernatedSessionRAMBytes  float64 `json:"hibernated_session_ram_bytes"`
	HibernatedSessionDiskBytes float64 `json:"hibernated_session_disk_bytes"`
	Errors                     int64   `json:"errors"`
	InProcess                  bool    `json:"in_process_daemon"`
}

func newBenchSessionsCmd(g *globals) *cobra.Command {
	var (
		n, conc, activations int
		dur                  time.Duration
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "Benchmark session creation, warm requests, hibernation and activation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 || conc < 1 || activations < 1 || dur <= 0 {
				return fmt.Errorf("--sessions, --concurrency, --activations and --duration must be positive")
			}
			res, err := benchSessions(cmd.Context(), g, n, conc, activations, dur)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&n, "sessions", 1000, "sessions to create (each writes state), then hibernate")
	f.IntVar(&conc, "concurrency", 16, "concurrent clients")
	f.IntVar(&activations, "activations", 200, "hibernated sessions to activate for the activation latency")
	f.DurationVar(&dur, "duration", 5*time.Second, "how long to run warm requests")
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}

func benchSessions(ctx context.Context, g *globals, n, conc, activations int, dur time.Duration) (*SessionsBench, error) {
	res := &SessionsBench{Concurrency: conc}
	var (
		c       *client.Client
		dataDir string
		err     error
	)
	if g.server == "" {
		dir, err := os.MkdirTemp("", "agentcloud-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg := config.Default()
		cfg.Data, cfg.Listen = dir, "127.0.0.1:0"
		cfg.SessionMemoryMiB = 1 << 16 // measure, don't evict
		d, err := daemon.New(cfg, nil)
		if err != nil {
			return nil, err
		}
		if err := d.Start(ctx); err != nil {
			return nil, err
		}
		defer d.Shutdown(context.Background())
		tok, _ := os.ReadFile(filepath.Join(dir, auth.TokenFile))
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
		c, err = client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)), client.WithHTTPClient(hc))
		if err != nil {
			return nil, err
		}
		dataDir, res.InProcess = dir, true
	} else if c, err = g.client(); err != nil {
		return nil, err
	}
	b, err := bundle.FromFiles(map[string][]byte{
		"agent.json": []byte(`{"name":"bench","entry":"agent.js","limits":{"idle_seconds":86400}}`),
		"agent.js":   []byte(benchAgent)})
	if err != nil {
		return nil, err
	}
	tgz, _ := b.TarGz()
	if _, err := c.Deploy(ctx, tgz); err != nil {
		return nil, fmt.Errorf("deploy bench agent: %w", err)
	}
	var errs atomic.Int64
	do := func(id, method string) time.Duration {
		t0 := time.Now()
		resp, err := c.Call(ctx, "bench", id, method, "/", nil, nil)
		if err != nil {
			errs.Add(1)
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			errs.Add(1)
		}
		return time.Since(t0)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "s" + strconv.Itoa(i)
	}
	runtime.GC()
	rss0, heap0, disk0 := rssBytes(), heapBytes(), dirBytes(dataDir)

	// 1. Create n sessions, each with state. The first liveN stay live to
	// measure live RSS; the rest are hibernated right after creation so a
	// large n fits in memory.
	liveN := min(n, 200)
	t0 := time.Now()
	parallel(conc, liveN, func(i int) { do(ids[i], "POST") })
	created := time.Since(t0)
	debug.FreeOSMemory()
	if res.InProcess {
		res.LiveSessionRSSKiB = float64(rssBytes()-rss0) / float64(liveN) / 1024
	}
	t0 = time.Now()
	parallel(conc, n-liveN, func(i int) {
		id := ids[liveN+i]
		do(id, "POST")
		if _, err := c.Hibernate(ctx, "bench", id); err != nil {
			errs.Add(1)
		}
	})
	created += time.Since(t0)
	res.SessionsCreated = n - int(errs.Load())
	res.CreateRatePerSec = float64(n) / created.Seconds()

	// 2. Warm requests on conc live sessions for dur.
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	t0 = time.Now()
	for w := range conc {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				mine = append(mine, do(ids[w%liveN], "GET"))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	res.RequestsPerSec = float64(len(lat)) / time.Since(t0).Seconds()
	res.WarmRequestP50Us, res.WarmRequestP99Us = pct(lat, 50), pct(lat, 99)

	// 3. Hibernate the live ones too; measure what a hibernated session costs.
	parallel(conc, liveN, func(i int) {
		if _, err := c.Hibernate(ctx, "bench", ids[i]); err != nil {
			errs.Add(1)
		}
	})
	if res.InProcess {
		// Hibernated sessions live in the store; what stays in RAM is Go
		// heap (indexes, caches), measured after a full GC.
		runtime.GC()
		res.HibernatedSessionRAMBytes = max(0, float64(heapBytes()-heap0)/float64(n))
		res.HibernatedSessionDiskBytes = float64(dirBytes(dataDir)-disk0) / float64(n)
	}

	// 4. Activate hibernated sessions, one at a time.
	lat = lat[:0]
	for i := 0; i < activations && i < n; i++ {
		lat = append(lat, do(ids[i*n/min(activations, n)], "GET"))
	}
	res.ActivateHibernatedP50Us, res.ActivateHibernatedP99Us = pct(lat, 50), pct(lat, 99)
	res.Errors = errs.Load()
	return res, nil
}

func parallel(conc, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds())
}

func heapBytes() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// rssBytes is this process's resident set size.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// dirBytes is the disk space used under dir.
func dirBytes(dir string) int64 {
	if dir == "" {
		return 0
	}
	var total int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return total
}
