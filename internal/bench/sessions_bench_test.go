package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
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
	}
}
