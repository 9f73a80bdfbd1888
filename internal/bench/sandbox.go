package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// SandboxOptions configure Sandbox.
type SandboxOptions struct {
	Target
	// Tier is api.SandboxTierProcess or api.SandboxTierGVisor.
	Tier string
	// N is the number of iterations per latency measurement.
	N int
	// Concurrency is the number of concurrent clients for the burst and
	// concurrency phases.
	Concurrency int
	// Alive is how many sandboxes to keep alive at once; 0 means 100 for
	// the process tier and 20 for gVisor.
	Alive int
	// Burst is the number of creates sent at once for burst100_*; 0
	// means 100.
	Burst int
	// Only runs one part: "" (all), SandboxOnlyCreate (host python, warm
	// exec, create + first python3) or SandboxOnlyBurst (the cold and the
	// pooled burst), so that a profile covers that part alone.
	Only string
	// PooledBurstProfile, when not nil, receives a CPU profile (pprof) of
	// the pooled burst (its creates and the deletes after them): the
	// in-process daemon's side, not its spawner's or sandboxes'.
	PooledBurstProfile io.Writer
}

// The parts SandboxOptions.Only selects.
const (
	SandboxOnlyCreate = "create"
	SandboxOnlyBurst  = "burst"
)

// SandboxResult is the result of Sandbox (`agentcloud bench sandbox`).
// Latencies are measured through the HTTP API, as a client sees them.
type SandboxResult struct {
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
	// ExecPythonPooled is that create plus its first `python3 -c
	// 'print(1)'` to the exit event: create + first command from a ready
	// pool, where ExecPython is the same in a loop that may empty it.
	ExecPythonPooledP50Ms float64 `json:"exec_python_pooled_p50_ms"`
	ExecPythonPooledP99Ms float64 `json:"exec_python_pooled_p99_ms"`
	// BurstCreate is a create while Concurrency clients create at once
	// (the pool is soon empty: mostly fresh sandboxes).
	BurstCreateP50Ms float64 `json:"burst_create_p50_ms"`
	BurstCreateP99Ms float64 `json:"burst_create_p99_ms"`
	// IdleRSSMiB is host memory in use per idle sandbox (MemTotal -
	// MemAvailable, before and after ConcurrentTarget sandboxes).
	IdleRSSMiB       float64 `json:"idle_rss_mib"`
	ConcurrentTarget int     `json:"concurrent_target"`
	// ConcurrentOK counts sandboxes alive at once that each ran a command.
	ConcurrentOK int `json:"concurrent_ok"`
	Concurrency  int `json:"concurrency"`
	// Burst100Create is each create of Burst (100) sent at the same
	// moment, one client each; Burst100OK counts those that succeeded.
	Burst100CreateP50Ms float64 `json:"burst100_create_p50_ms"`
	Burst100CreateP99Ms float64 `json:"burst100_create_p99_ms"`
	Burst100OK          int     `json:"burst100_ok"`
	Burst100            int     `json:"burst100_n"`
	// Burst100Pooled is the same burst on a second daemon (process tier,
	// in-process only) whose warm pool holds Burst sandboxes, sent once
	// the pool is full (PoolFillMs after that daemon started, for
	// PoolSize sandboxes): the figure for a pool sized for bursts.
	Burst100PooledP50Ms *float64 `json:"burst100_pooled_p50_ms"`
	Burst100PooledP99Ms *float64 `json:"burst100_pooled_p99_ms"`
	Burst100PooledOK    int      `json:"burst100_pooled_ok"`
	// Burst100PooledCPUMs is the CPU that the benchmark's process tree
	// (the in-process daemon, its spawner, the sandboxes' inits and the
	// pool's refills) used from the pooled burst's start until its last
	// create answered, read from the cpuacct cgroup the benchmark runs in
	// (null unless it runs in one of its own: the root's counts every
	// process); Burst100PooledReadyAfter is how many sandboxes the pool
	// had ready again at that moment (refills beside the burst).
	Burst100PooledCPUMs      *float64 `json:"burst100_pooled_cpu_ms"`
	Burst100PooledReadyAfter int      `json:"burst100_pooled_ready_after"`
	PoolFillMs               *float64 `json:"pool_fill_ms"`
	PoolSize                 int      `json:"pool_size,omitempty"`
	// ExecPythonHostRatio is exec_python_p50_ms over baseline_python_p50_ms
	// (the target: at most 1.3 on the process tier).
	ExecPythonHostRatio float64 `json:"exec_python_host_ratio"`
	// The same pair taken turn about in one loop (interleaved.go): each
	// round runs the host's python3 and a create + first python3 +
	// delete, in alternating order, so both meet the same machine (caches,
	// load) where the back-to-back host loop above meets a warm one.
	ExecPythonInterleavedP50Ms     float64 `json:"exec_python_interleaved_p50_ms"`
	BaselinePythonInterleavedP50Ms float64 `json:"baseline_python_interleaved_p50_ms"`
	ExecPythonHostRatioInterleaved float64 `json:"exec_python_host_ratio_interleaved"`
	// Fork100Ms (ForkN copies at once, 100 unless Burst is smaller),
	// SnapshotMsPerGiB and RestoreMs are taken on a sandbox with a
	// SnapshotWorkspaceMiB workspace (snapshot.go); a null figure has its
	// reason in Unmeasured. SnapshotMemory says whether the snapshot held
	// memory, SnapshotNote why not. Fork100PooledMs is that fork on the
	// daemon of Burst100Pooled, its pool full again (the copies are pool
	// claims).
	Fork100Ms       *float64 `json:"fork100_ms"`
	Fork100PooledMs *float64 `json:"fork100_pooled_ms"`
	ForkN           int      `json:"fork_n,omitempty"`
	// Fork100PausedMs is ForkN paused copies (ForkSandboxRequest.Paused)
	// of a sandbox holding ForkPausedMemoryMiB in a process's memory (on
	// a tier that saves memory; 0 elsewhere, where the copies are stopped
	// with their files); ForkPausedResumeMs is the resume of one of them,
	// to its first command answered (restore and exec; start and exec
	// where there is no memory).
	Fork100PausedMs      *float64 `json:"fork100_paused_ms"`
	ForkPausedResumeMs   *float64 `json:"fork_paused_resume_ms"`
	ForkPausedMemoryMiB  int      `json:"fork_paused_memory_mib"`
	SnapshotMsPerGiB     *float64 `json:"snapshot_ms_per_gib"`
	RestoreMs            *float64 `json:"restore_ms"`
	SnapshotWorkspaceMiB int      `json:"snapshot_workspace_mib,omitempty"`
	SnapshotMemory       bool     `json:"snapshot_memory"`
	SnapshotNote         string   `json:"snapshot_note,omitempty"`
	Unmeasured           []string `json:"unmeasured,omitempty"`
	// LoadAvg1m is the host's 1-minute load average at the start and end
	// of the run: figures taken under load say so.
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
	Errors       int64   `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
	InProcess    bool    `json:"in_process_daemon"`
}

// sandboxRun is one run of Sandbox.
type sandboxRun struct {
	SandboxOptions
	c    *client.Client
	errs errCount
	// created, when set, runs once burst's creates have all answered,
	// before it deletes them (pooledBurst's CPU and pool reading).
	created func()
}

var pythonExec = api.ExecRequest{Cmd: "python3", Args: []string{"-c", "print(1)"}}

// Sandbox measures sandbox create, exec, pool claims, idle memory and
// concurrency of one tier.
func Sandbox(ctx context.Context, opts SandboxOptions) (*SandboxResult, error) {
	if opts.N < 1 || opts.Concurrency < 1 || opts.Alive < 0 || opts.Burst < 0 {
		return nil, errors.New("bench sandbox: N and Concurrency must be positive and Alive and Burst not negative")
	}
	if opts.Burst == 0 {
		opts.Burst = 100
	}
	if opts.Alive == 0 {
		opts.Alive = 100
		if opts.Tier == api.SandboxTierGVisor {
			opts.Alive = 20
		}
	}
	if opts.Only != "" && opts.Only != SandboxOnlyCreate && opts.Only != SandboxOnlyBurst {
		return nil, fmt.Errorf("bench sandbox: only %q: want %q or %q", opts.Only, SandboxOnlyCreate, SandboxOnlyBurst)
	}
	n, err := connect(ctx, opts.Target, max(opts.Concurrency, opts.Burst), func(c *config.Config) {
		burstFrontDoor(opts.Burst)(c)
		onlyPool(opts.Tier)(c)
	})
	if err != nil {
		return nil, err
	}
	stop := sync.OnceFunc(n.stop)
	defer stop()
	res := &SandboxResult{Tier: opts.Tier, N: opts.N, Concurrency: opts.Concurrency, ConcurrentTarget: opts.Alive, InProcess: n.inProcess,
		LoadAvgStart: loadAvg(), Unmeasured: []string{"fork100_ms", "fork100_paused_ms", "snapshot_ms_per_gib", "restore_ms"}}
	r := &sandboxRun{SandboxOptions: opts, c: n.c}
	// Fail early and clearly when the tier does not work at all.
	id, _, err := r.create(ctx)
	if err != nil {
		return nil, fmt.Errorf("create a %s sandbox: %w", opts.Tier, err)
	}
	if err := r.run(ctx, id, pythonExec); err != nil {
		r.del(ctx, id)
		return nil, fmt.Errorf("python3 in a %s sandbox: %w", opts.Tier, err)
	}
	if opts.Only == SandboxOnlyBurst {
		r.del(ctx, id)
		r.burst(ctx, res)
		stop()
		res.Errors, res.FirstError = r.errs.n.Load(), r.errs.first
		pooledBurst(ctx, opts, res)
		res.LoadAvgEnd = loadAvg()
		return res, nil
	}
	r.warmExec(ctx, res, id)
	creates := r.createExec(ctx, res)
	r.interleaved(ctx, res)
	if opts.Only == SandboxOnlyCreate {
		stop()
		res.Errors, res.FirstError = r.errs.n.Load(), r.errs.first
		res.ExecPythonHostRatio = hostRatio(res)
		res.LoadAvgEnd = loadAvg()
		return res, nil
	}
	// Pool claims: rest so the pool refills, then create.
	rest := 4 * time.Duration(pct(creates, 50)*1000)
	rest = min(max(rest, 200*time.Millisecond), 3*time.Second)
	var claims, firsts []time.Duration
	for range min(opts.N, 10) {
		time.Sleep(rest)
		t0 := time.Now()
		id, d, err := r.create(ctx)
		if err != nil {
			r.errs.add(err)
			continue
		}
		claims = append(claims, d)
		if err := r.run(ctx, id, pythonExec); err != nil {
			r.errs.add(err)
		} else {
			firsts = append(firsts, time.Since(t0))
		}
		r.del(ctx, id)
	}
	res.PoolClaimP50Ms = ms(pct(claims, 50))
	res.ExecPythonPooledP50Ms, res.ExecPythonPooledP99Ms = ms(pct(firsts, 50)), ms(pct(firsts, 99))
	time.Sleep(rest)
	r.alive(ctx, res)
	time.Sleep(rest)
	r.burst(ctx, res)
	r.snapshots(ctx, res)
	stop()
	res.Errors, res.FirstError = r.errs.n.Load(), r.errs.first
	pooledBurst(ctx, opts, res)
	res.ExecPythonHostRatio = hostRatio(res)
	res.LoadAvgEnd = loadAvg()
	return res, nil
}

// hostRatio is create + first python3 over python on the host (0 if the
// host's was not measured), to two decimals.
func hostRatio(res *SandboxResult) float64 {
	if res.BaselinePythonP50Ms <= 0 {
		return 0
	}
	return float64(int(res.ExecPythonP50Ms/res.BaselinePythonP50Ms*100)) / 100
}

func (r *sandboxRun) create(ctx context.Context) (string, time.Duration, error) {
	t0 := time.Now()
	sb, err := r.c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: r.Tier, TimeoutS: 600})
	if err != nil {
		return "", 0, err
	}
	return sb.ID, time.Since(t0), nil
}

func (r *sandboxRun) run(ctx context.Context, id string, req api.ExecRequest) error {
	var out bytes.Buffer
	code, err := r.c.Exec(ctx, id, req, &out, &out)
	if err == nil && code != 0 {
		err = fmt.Errorf("%s exited %d: %s", req.Cmd, code, strings.TrimSpace(out.String()))
	}
	return err
}

func (r *sandboxRun) del(ctx context.Context, id string) {
	if err := r.c.DeleteSandbox(context.WithoutCancel(ctx), id); err != nil {
		r.errs.add(err)
	}
}

// warmExec times python in the existing sandbox id (then deletes it) and
// the same command on the host.
func (r *sandboxRun) warmExec(ctx context.Context, res *SandboxResult, id string) {
	var warm, base []time.Duration
	for range r.N {
		t0 := time.Now()
		if err := r.run(ctx, id, pythonExec); err != nil {
			r.errs.add(err)
			continue
		}
		warm = append(warm, time.Since(t0))
	}
	r.del(ctx, id)
	res.BaselinePython = sandboxLookPath("python3")
	for range r.N {
		if d, ok := r.hostPython(ctx, res.BaselinePython); ok {
			base = append(base, d)
		}
	}
	res.ExecPythonWarmP50Ms, res.BaselinePythonP50Ms = ms(pct(warm, 50)), ms(pct(base, 50))
}

// hostPython times the pythonExec command on the host with python.
func (r *sandboxRun) hostPython(ctx context.Context, python string) (time.Duration, bool) {
	t0 := time.Now()
	if err := exec.CommandContext(ctx, python, "-c", "print(1)").Run(); err != nil {
		r.errs.add(fmt.Errorf("host python3: %w", err))
		return 0, false
	}
	return time.Since(t0), true
}

// createFirst times a create and create + first python3 of one new
// sandbox, then deletes it.
func (r *sandboxRun) createFirst(ctx context.Context) (create, first time.Duration, ok bool) {
	t0 := time.Now()
	id, d, err := r.create(ctx)
	if err != nil {
		r.errs.add(err)
		return 0, 0, false
	}
	defer r.del(ctx, id)
	if err := r.run(ctx, id, pythonExec); err != nil {
		r.errs.add(err)
		return 0, 0, false
	}
	return d, time.Since(t0), true
}

// createExec times create + first exec, a new sandbox each time, and
// returns the create latencies.
func (r *sandboxRun) createExec(ctx context.Context, res *SandboxResult) []time.Duration {
	var creates, firsts []time.Duration
	for range r.N {
		if d, first, ok := r.createFirst(ctx); ok {
			creates, firsts = append(creates, d), append(firsts, first)
		}
	}
	res.CreateP50Ms, res.CreateP99Ms = ms(pct(creates, 50)), ms(pct(creates, 99))
	res.ExecPythonP50Ms, res.ExecPythonP99Ms = ms(pct(firsts, 50)), ms(pct(firsts, 99))
	return creates
}

// alive keeps Alive sandboxes at once, created by Concurrency clients;
// each runs a command; host memory is compared before and after.
func (r *sandboxRun) alive(ctx context.Context, res *SandboxResult) {
	mem0 := memUsedBytes()
	ids := make([]string, r.Alive)
	var mu sync.Mutex
	var burst []time.Duration
	parallel(r.Concurrency, r.Alive, func(i int) {
		id, d, err := r.create(ctx)
		if err != nil {
			r.errs.add(err)
			return
		}
		ids[i] = id
		mu.Lock()
		burst = append(burst, d)
		mu.Unlock()
	})
	var ok atomic.Int64
	parallel(r.Concurrency, r.Alive, func(i int) {
		if ids[i] == "" {
			return
		}
		if err := r.run(ctx, ids[i], api.ExecRequest{Cmd: "true"}); err != nil {
			r.errs.add(err)
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
	parallel(r.Concurrency, r.Alive, func(i int) {
		if ids[i] != "" {
			r.del(ctx, ids[i])
		}
	})
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

// burst sends Burst creates at the same moment, one client each, then
// deletes what they made.
func (r *sandboxRun) burst(ctx context.Context, res *SandboxResult) {
	ids := make([]string, r.Burst)
	lat := make([]time.Duration, r.Burst)
	var ok atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range r.Burst {
		wg.Go(func() {
			<-start
			id, d, err := r.create(ctx)
			if err != nil {
				r.errs.add(fmt.Errorf("burst create: %w", err))
				return
			}
			ids[i], lat[i] = id, d
			ok.Add(1)
		})
	}
	close(start)
	wg.Wait()
	if r.created != nil {
		r.created()
	}
	var done []time.Duration
	for i, id := range ids {
		if id != "" {
			done = append(done, lat[i])
		}
	}
	res.Burst100, res.Burst100OK = r.Burst, int(ok.Load())
	res.Burst100CreateP50Ms, res.Burst100CreateP99Ms = ms(pct(done, 50)), ms(pct(done, 99))
	parallel(r.Concurrency, r.Burst, func(i int) {
		if ids[i] != "" {
			r.del(ctx, ids[i])
		}
	})
}

// loadAvg is the host's 1-minute load average, 0 if unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// onlyPool keeps the warm pool of tier only, in a daemon the benchmark
// starts: the other tier's pool would boot its sandboxes (a gVisor one is
// a second of runsc CPU) while this tier is measured.
func onlyPool(tier string) func(*config.Config) {
	return func(c *config.Config) {
		if tier == api.SandboxTierProcess {
			c.SandboxPoolGVisor = 0
		} else {
			c.SandboxPoolProcess = 0
		}
	}
}

// burstFrontDoor lets the benchmark's one administrator queue a whole
// burst at the front door of the daemon the benchmark starts (by default
// one caller's fair share of the system level is a few dozen waiting
// requests, and the rest are refused with 429): burst100 measures
// sandbox creation, not the fair queuing of a single caller.
func burstFrontDoor(burst int) func(*config.Config) {
	return func(c *config.Config) {
		if c.Gateway.Levels == nil {
			c.Gateway.Levels = config.DefaultLevels()
		}
		for i, l := range c.Gateway.Levels {
			if l.Name == "system" {
				l.HandSize, l.QueueLength = min(l.Queues, 16), max(l.QueueLength, 2*burst)
				l.QueueTimeout = config.Duration(max(time.Duration(l.QueueTimeout), 2*time.Minute))
				c.Gateway.Levels[i] = l
			}
		}
	}
}
