package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
)

// pooledBurst repeats the burst on a fresh in-process daemon whose warm
// pool holds Burst sandboxes (sandbox_pool_process), once the pool is
// full: burst100_pooled_* beside the cold burst100_* of the default pool.
// It also times the pool's fill from empty (pool_fill_ms). Only the
// process tier's pool may be that large, and only a daemon the benchmark
// starts can be configured so; otherwise the keys stay null.
func pooledBurst(ctx context.Context, opts SandboxOptions, res *SandboxResult) {
	if opts.Tier != api.SandboxTierProcess || opts.Target.Client != nil || opts.Burst > config.MaxSandboxPoolProcess {
		res.Unmeasured = append(res.Unmeasured, "burst100_pooled_p50_ms", "burst100_pooled_p99_ms", "pool_fill_ms", "fork100_pooled_ms")
		return
	}
	t0 := time.Now()
	n, err := connect(ctx, opts.Target, opts.Burst, func(c *config.Config) {
		burstFrontDoor(opts.Burst)(c)
		onlyPool(opts.Tier)(c)
		c.SandboxPoolProcess = opts.Burst
	})
	if err != nil {
		res.Unmeasured = append(res.Unmeasured, "burst100_pooled_p50_ms", "burst100_pooled_p99_ms", "pool_fill_ms", "fork100_pooled_ms")
		res.FirstError = fmt.Sprintf("pooled burst: %v", err)
		return
	}
	defer n.stop()
	r := &sandboxRun{SandboxOptions: opts, c: n.c}
	size, err := waitPoolFull(ctx, n, opts.Tier, 5*time.Minute)
	if err != nil {
		r.errs.add(fmt.Errorf("pooled burst: %w", err))
	} else {
		fill := msOf(time.Since(t0))
		res.PoolFillMs, res.PoolSize = &fill, size
	}
	b := &SandboxResult{}
	profiling := false
	if opts.PooledBurstProfile != nil {
		if err := pprof.StartCPUProfile(opts.PooledBurstProfile); err != nil {
			r.errs.add(fmt.Errorf("pooled burst profile: %w", err))
		} else {
			profiling = true
		}
	}
	cpu0, cpuOK := treeCPU()
	r.created = func() {
		if cpu1, ok := treeCPU(); ok && cpuOK {
			ms := msOf(cpu1 - cpu0)
			res.Burst100PooledCPUMs = &ms
		}
		res.Burst100PooledReadyAfter, _, _ = poolGauges(ctx, n, opts.Tier)
	}
	r.burst(ctx, b)
	r.created = nil
	if profiling {
		pprof.StopCPUProfile()
	}
	res.Burst100PooledP50Ms, res.Burst100PooledP99Ms, res.Burst100PooledOK = &b.Burst100CreateP50Ms, &b.Burst100CreateP99Ms, b.Burst100OK
	if d, err := pooledFork(ctx, r, n, opts.Tier); err != nil {
		res.Unmeasured = append(res.Unmeasured, "fork100_pooled_ms: "+err.Error())
	} else {
		res.Fork100PooledMs = &d
	}
	if n := r.errs.n.Load(); n > 0 {
		res.Errors += n
		if res.FirstError == "" {
			res.FirstError = r.errs.first
		}
	}
}

// treeCPU is the CPU used so far by the cpuacct cgroup this process runs
// in, with everything it started (the tier moves sandboxes into cgroups of
// other hierarchies only); false when there is none, or it is the root.
func treeCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	dir, ok := cpuacctDir(string(b))
	if !ok {
		return 0, false
	}
	v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", dir, "cpuacct.usage"))
	if err != nil {
		return 0, false
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
	return time.Duration(ns), err == nil && ns >= 0
}

// cpuacctDir finds the cpuacct (v1) cgroup in the text of
// /proc/self/cgroup: false when there is none, when it is the root, or
// when its path would leave the hierarchy.
func cpuacctDir(procCgroup string) (string, bool) {
	for line := range strings.Lines(procCgroup) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 || !slices.Contains(strings.Split(f[1], ","), "cpuacct") {
			continue
		}
		dir := filepath.Clean("/" + f[2])
		if dir == "/" || dir != f[2] {
			return "", false
		}
		return dir, true
	}
	return "", false
}

// pooledFork is fork100_ms on the daemon whose pool is sized for bursts:
// a sandbox with the same workspace as the fork on the default pool,
// forked into as many copies once the pool is full again.
func pooledFork(ctx context.Context, r *sandboxRun, n *node, tier string) (float64, error) {
	id, _, err := r.create(ctx)
	if err != nil {
		return 0, err
	}
	defer r.del(ctx, id)
	if err := r.fill(ctx, id); err != nil {
		return 0, err
	}
	if _, err := waitPoolFull(ctx, n, tier, 5*time.Minute); err != nil {
		return 0, err
	}
	return r.fork(ctx, id, min(r.Burst, 100))
}

// waitPoolFull polls the daemon's metrics until tier's warm pool is full
// and returns its size.
func waitPoolFull(ctx context.Context, n *node, tier string, limit time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ready, size, err := poolGauges(ctx, n, tier)
		if err == nil && size > 0 && ready >= size {
			return size, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("warm pool of %d has %d ready after %v: %w (last error: %v)", size, ready, limit, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// poolGauges reads agentcloud_sandbox_pool_ready and _size of tier's host
// template pool from /metrics.
func poolGauges(ctx context.Context, n *node, tier string) (ready, size int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	label := `tier="` + tier + `"`
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.Contains(rest, label) || !strings.Contains(rest, `template="host"`) {
			continue
		}
		_, v, _ := strings.Cut(rest, "} ")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		switch name {
		case "agentcloud_sandbox_pool_ready":
			ready = int(f)
		case "agentcloud_sandbox_pool_size":
			size = int(f)
		}
	}
	return ready, size, sc.Err()
}
