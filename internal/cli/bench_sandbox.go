package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/spf13/cobra"
)

// SandboxBench is the result of `agentcloud bench sandbox`. Latencies are
// measured through the HTTP API, as a client sees them.
type SandboxBench struct {
	Tier string `json:"tier"`
	N    int    `json:"n"`
	// Create is POST /v1/sandboxes inside a create→exec→delete loop (warm
	// pool claims while the pool keeps up, fresh sandboxes when it does not).
	CreateP50Ms float64 `json:"create_p50_ms"`
	CreateP99Ms float64 `json:"create_p99_ms"`
	// ExecPython is create plus the first `python3 -c 'print(1)'` to its
	// exit event, a new sandbox each time.
	ExecPythonP50Ms float64 `json:"exec_python_p50_ms"`
	ExecPythonP99Ms float64 `json:"exec_python_p99_ms"`
	// ExecPythonWarm is the same command in an existing sandbox.
	ExecPythonWarmP50Ms float64 `json:"exec_python_warm_p50_ms"`
	// BaselinePython is the same command run directly on this host, with
	// python3 looked up in the sandbox PATH (not, say, a pyenv shim).
	BaselinePythonP50Ms float64 `json:"baseline_python_p50_ms"`
	BaselinePython      string  `json:"baseline_python"`
	// PoolClaim is a create with the warm pool full (rested between calls).
	PoolClaimP50Ms float64 `json:"pool_claim_p50_ms"`
	// BurstCreate is a create while Concurrency clients create at once
	// (the pool is soon empty: mostly fresh sandboxes).
	BurstCreateP50Ms float64 `json:"burst_create_p50_ms"`
	BurstCreateP99Ms float64 `json:"burst_create_p99_ms"`
	// IdleRSSMiB is host memory in use per idle sandbox (MemTotal -
	// MemAvailable, before and after ConcurrentTarget sandboxes).
	IdleRSSMiB       float64 `json:"idle_rss_mib"`
	ConcurrentTarget int     `json:"concurrent_target"`
	// ConcurrentOK counts sandboxes alive at once that each ran a command.
	ConcurrentOK int    `json:"concurrent_ok"`
	Concurrency  int    `json:"concurrency"`
	Errors       int64  `json:"errors"`
	FirstError   string `json:"first_error,omitempty"`
	InProcess    bool   `json:"in_process_daemon"`
}

func newBenchSandboxCmd(g *globals) *cobra.Command {
	var (
		tier         string
		n, conc, alv int
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Benchmark sandbox create, exec, pool claims, idle memory and concurrency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 || conc < 1 || alv < 0 {
				return fmt.Errorf("--n and --concurrency must be positive and --alive not negative")
			}
			if alv == 0 {
				alv = 100
				if tier == api.SandboxTierGVisor {
					alv = 20
				}
			}
			res, err := benchSandbox(cmd.Context(), g, tier, n, conc, alv)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tier, "tier", api.SandboxTierProcess, "sandbox tier: process or gvisor")
	f.IntVar(&n, "n", 30, "iterations per latency measurement")
	f.IntVar(&conc, "concurrency", 8, "concurrent clients for the burst and concurrency phases")
	f.IntVar(&alv, "alive", 0, "sandboxes to keep alive at once (default 100 for process, 20 for gvisor)")
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}

// benchErrs counts failures and keeps the first.
type benchErrs struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *benchErrs) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = describe(err) })
}

func benchSandbox(ctx context.Context, g *globals, tier string, n, conc, alive int) (*SandboxBench, error) {
	res := &SandboxBench{Tier: tier, N: n, Concurrency: conc, ConcurrentTarget: alive}
	c, stop, inProcess, err := benchDaemon(ctx, g, conc)
	if err != nil {
		return nil, err
	}
	defer stop()
	res.InProcess = inProcess
	var errs benchErrs
	python := api.ExecRequest{Cmd: "python3", Args: []string{"-c", "print(1)"}}
	create := func() (string, time.Duration, error) {
		t0 := time.Now()
		sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: tier, TimeoutS: 600})
		if err != nil {
			return "", 0, err
		}
		return sb.ID, time.Since(t0), nil
	}
	run := func(id string, req api.ExecRequest) error {
		var out bytes.Buffer
		code, err := c.Exec(ctx, id, req, &out, &out)
		if err == nil && code != 0 {
			err = fmt.Errorf("%s exited %d: %s", req.Cmd, code, strings.TrimSpace(out.String()))
		}
		return err
	}
	del := func(id string) {
		if err := c.DeleteSandbox(context.WithoutCancel(ctx), id); err != nil {
			errs.add(err)
		}
	}
	// Fail early and clearly when the tier does not work at all.
	id, _, err := create()
	if err != nil {
		return nil, fmt.Errorf("create a %s sandbox: %w", tier, err)
	}
	if err := run(id, python); err != nil {
		del(id)
		return nil, fmt.Errorf("python3 in a %s sandbox: %w", tier, err)
	}

	// 1. Warm exec in the existing sandbox, and the host baseline.
	var warm, base []time.Duration
	for range n {
		t0 := time.Now()
		if err := run(id, python); err != nil {
			errs.add(err)
			continue
		}
		warm = append(warm, time.Since(t0))
	}
	del(id)
	res.BaselinePython = sandboxLookPath("python3")
	for range n {
		t0 := time.Now()
		if err := exec.CommandContext(ctx, res.BaselinePython, "-c", "print(1)").Run(); err != nil {
			errs.add(fmt.Errorf("host python3: %w", err))
			continue
		}
		base = append(base, time.Since(t0))
	}
	res.ExecPythonWarmP50Ms, res.BaselinePythonP50Ms = ms(pct(warm, 50)), ms(pct(base, 50))

	// 2. Create + first exec, a new sandbox each time.
	var creates, firsts []time.Duration
	for range n {
		t0 := time.Now()
		id, d, err := create()
		if err != nil {
			errs.add(err)
			continue
		}
		if err := run(id, python); err != nil {
			errs.add(err)
		} else {
			creates, firsts = append(creates, d), append(firsts, time.Since(t0))
		}
		del(id)
	}
	res.CreateP50Ms, res.CreateP99Ms = ms(pct(creates, 50)), ms(pct(creates, 99))
	res.ExecPythonP50Ms, res.ExecPythonP99Ms = ms(pct(firsts, 50)), ms(pct(firsts, 99))

	// 3. Pool claims: rest so the pool refills, then create.
	rest := 4 * time.Duration(pct(creates, 50)*1000)
	rest = min(max(rest, 200*time.Millisecond), 3*time.Second)
	var claims []time.Duration
	for range min(n, 10) {
		time.Sleep(rest)
		id, d, err := create()
		if err != nil {
			errs.add(err)
			continue
		}
		claims = append(claims, d)
		del(id)
	}
	res.PoolClaimP50Ms = ms(pct(claims, 50))

	// 4. alive sandboxes at once, created by conc clients; each runs a
	// command; host memory is compared before and after.
	time.Sleep(rest)
	mem0 := memUsedBytes()
	ids := make([]string, alive)
	var mu sync.Mutex
	var burst []time.Duration
	parallel(conc, alive, func(i int) {
		id, d, err := create()
		if err != nil {
			errs.add(err)
			return
		}
		ids[i] = id
		mu.Lock()
		burst = append(burst, d)
		mu.Unlock()
	})
	var ok atomic.Int64
	parallel(conc, alive, func(i int) {
		if ids[i] == "" {
			return
		}
		if err := run(ids[i], api.ExecRequest{Cmd: "true"}); err != nil {
			errs.add(err)
			return
		}
		ok.Add(1)
	})
	time.Sleep(500 * time.Millisecond) // let pool refills settle
	if created := len(burst); created > 0 {
		res.IdleRSSMiB = float64(memUsedBytes()-mem0) / float64(created) / (1 << 20)
	}
	res.ConcurrentOK = int(ok.Load())
	res.BurstCreateP50Ms, res.BurstCreateP99Ms = ms(pct(burst, 50)), ms(pct(burst, 99))
	parallel(conc, alive, func(i int) {
		if ids[i] != "" {
			del(ids[i])
		}
	})
	res.Errors, res.FirstError = errs.n.Load(), errs.first
	return res, nil
}

// ms turns pct's microseconds into milliseconds.
func ms(us float64) float64 { return float64(int64(us)) / 1000 }

// benchDaemon returns a client for --server, or for a daemon started here in
// a temporary data dir; stop shuts it down.
func benchDaemon(ctx context.Context, g *globals, conc int, tune ...func(*config.Config)) (c *client.Client, stop func(), inProcess bool, err error) {
	if g.server != "" {
		c, err := g.client()
		return c, func() {}, false, err
	}
	dir, err := os.MkdirTemp("", "agentcloud-bench-")
	if err != nil {
		return nil, nil, false, err
	}
	cfg := config.Default()
	cfg.Data, cfg.Listen = dir, "127.0.0.1:0"
	for _, f := range tune {
		f(&cfg)
	}
	d, err := daemon.New(cfg, nil)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, false, err
	}
	if err := d.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, nil, false, err
	}
	stop = func() {
		_ = d.Shutdown(context.Background())
		os.RemoveAll(dir)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, auth.TokenFile))
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}}
	c, err = client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)), client.WithHTTPClient(hc))
	if err != nil {
		stop()
		return nil, nil, false, err
	}
	return c, stop, true, nil
}

// sandboxLookPath finds a program in the PATH that sandboxes use.
func sandboxLookPath(name string) string {
	for _, dir := range filepath.SplitList(sandbox.DefaultEnv["PATH"]) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// memUsedBytes is the host's MemTotal - MemAvailable.
func memUsedBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var total, avail int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "MemTotal":
			total = kb
		case "MemAvailable":
			avail = kb
		}
	}
	return (total - avail) << 10
}
