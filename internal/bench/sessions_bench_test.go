package bench

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// BenchmarkSessions runs `bench sessions` once in-process so the whole path
// (HTTP, auth, activation, state write, hibernation) can be profiled:
//
//	go test -run '^$' -bench BenchmarkSessions -benchtime 1x \
//	  -cpuprofile cpu.out -memprofile mem.out ./internal/bench
//
// AGENTCLOUD_BENCH_SESSIONS sets the session count (default 2000);
// AGENTCLOUD_BENCH_HIBERNATED=1 runs the hibernated-only mode (creation,
// activation and restart without the live phases).
func BenchmarkSessions(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("AGENTCLOUD_BENCH_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	for b.Loop() {
		pool0 := isolate.ReadPoolStats()
		res, err := Sessions(context.Background(), SessionsOptions{Sessions: n, Concurrency: 16, Activations: 200, Duration: 2 * time.Second,
			Hibernated: os.Getenv("AGENTCLOUD_BENCH_HIBERNATED") == "1"})
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors != 0 {
			b.Fatalf("%d errors", res.Errors)
		}
		b.ReportMetric(res.CreateRatePerSec, "creates/s")
		b.ReportMetric(res.CreateCPUMs, "create-cpu-ms")
		b.ReportMetric(res.WarmRequestP50Us, "warm-p50-µs")
		b.ReportMetric(res.RequestsPerSec, "req/s")
		b.ReportMetric(res.ActivateHibernatedP50Us, "activate-p50-µs")
		b.ReportMetric(res.ActivateHibernatedP99Us, "activate-p99-µs")
		// Restores that found a reset reservation in the pool (pool.go).
		p := isolate.ReadPoolStats()
		inst, kept, miss := p.InstanceHits-pool0.InstanceHits, p.Hits-pool0.Hits, p.Misses-pool0.Misses
		if n := inst + kept + miss; n > 0 {
			b.ReportMetric(float64(inst+kept)/float64(n), "pool-hits")
			b.ReportMetric(float64(inst)/float64(n), "inst-hits")
		}
	}
}

// BenchmarkHTTPWarmCall is one warm request at concurrency 1 through the
// whole HTTP path of an in-process daemon (router, auth, policy, session
// call, response), the `warm_request_c1_p50_us` row of `bench sessions`:
//
//	go test -run '^$' -bench BenchmarkHTTPWarmCall -benchtime 5000x \
//	  -cpuprofile cpu.out -memprofile mem.out -o bench.test ./internal/bench
func BenchmarkHTTPWarmCall(b *testing.B) {
	ctx := context.Background()
	n, err := connect(ctx, Target{}, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer n.stop()
	if err := deploy(ctx, n.c, `{"name":"bench","entry":"agent.js","limits":{"idle_seconds":86400}}`, sessionsAgent); err != nil {
		b.Fatal(err)
	}
	r := &sessionsRun{c: n.c}
	r.do(ctx, "s0", "GET")
	if r.errs.Load() != 0 {
		b.Fatal("first call failed")
	}
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		r.do(ctx, "s0", "GET")
	}
	// CPU time per request (client and daemon, one process): unlike
	// ns/op, hardly changed by other load on the machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if e := r.errs.Load(); e != 0 {
		b.Fatalf("%d errors", e)
	}
}

// processCPU is the CPU time this process has used (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
