package session

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// BenchmarkCreateSession is one session creation as `bench sessions` counts
// it, without HTTP: a new session activated from its version's template, a
// first request that writes state (durable before it answers), and
// hibernation (snapshot and session record, durable), on a store with group
// commit as a daemon runs it. It reports the CPU time per creation, which
// load on the machine hardly changes:
//
//	go test -run '^$' -bench BenchmarkCreateSession -benchtime 2000x \
//	  -cpuprofile cpu.out ./internal/session
func BenchmarkCreateSession(b *testing.B) {
	st, err := store.Open(context.Background(), store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	m := openManager(b, b.TempDir(), func(c *testConfig) { c.Store = st })
	b.Cleanup(func() { _ = st.Close() })
	deploy(b, m, `{"name":"bench","entry":"agent.js","limits":{"idle_seconds":86400}}`,
		`export default { async fetch(request, env) {
			if (request.method === "POST") { await env.state.put("k", {v: 1}); }
			return new Response("hello");
		} };`)
	ctx := context.Background()
	// One creation first, so one-time work (the template's hot pages)
	// stays out of the figure.
	if _, err := m.Call(ctx, "bench", "warm", isolate.Request{Method: "POST", URL: "http://x/"}); err != nil {
		b.Fatal(err)
	}
	if err := m.Hibernate(ctx, "bench", "warm"); err != nil {
		b.Fatal(err)
	}
	// The restore module compiles in the background after the first
	// restore; its ~0.6 s of CPU is not a creation's.
	testRuntime.PrepareRestores()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, rounds0, pool0 := benchCPU(), st.SyncRounds(), isolate.ReadPoolStats()
	b.SetParallelism(8) // concurrent clients, as in bench sessions
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "s" + strconv.FormatInt(n.Add(1), 10)
			resp, err := m.Call(ctx, "bench", id, isolate.Request{Method: "POST", URL: "http://x/"})
			if err != nil || resp.Status != 200 {
				b.Errorf("create %s: %v %d", id, err, resp.Status)
				return
			}
			if err := m.Hibernate(ctx, "bench", id); err != nil {
				b.Errorf("hibernate %s: %v", id, err)
				return
			}
		}
	})
	b.ReportMetric(float64(benchCPU()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(st.SyncRounds()-rounds0)/float64(b.N), "fsync-rounds/op")
	reportPool(b, pool0, isolate.ReadPoolStats())
}

// reportPool reports the share of restores between two pool counts that
// found a pooled instance (inst-hits) or at least a pooled reservation
// (pool-hits).
func reportPool(b *testing.B, p0, p isolate.PoolStats) {
	inst, res, miss := p.InstanceHits-p0.InstanceHits, p.Hits-p0.Hits, p.Misses-p0.Misses
	if n := inst + res + miss; n > 0 {
		b.ReportMetric(float64(inst+res)/float64(n), "pool-hits")
		b.ReportMetric(float64(inst)/float64(n), "inst-hits")
	}
}

// BenchmarkActivateHibernated is the activation of a hibernated session as
// `bench sessions` measures it, without HTTP: one GET to a session whose
// heap is in the store (meta, pending-commit and snapshot reads, restore,
// the request), one at a time. With live, the sessions stay live after it,
// as in bench sessions (so reservations do not come back to the pool);
// else each is hibernated again, untimed. It reports the latency
// percentiles and the process's CPU time per activation:
//
//	go test -run '^$' -bench BenchmarkActivateHibernated -benchtime 500x ./internal/session
func BenchmarkActivateHibernated(b *testing.B) {
	for _, live := range []bool{true, false} {
		b.Run("live="+strconv.FormatBool(live), func(b *testing.B) { benchActivate(b, live, testRuntime) })
	}
	// live, with the runtime keeping instances ready as the daemon's does
	// (isolate/prefill.go): the prefill's CPU is in cpu-µs/op.
	b.Run("live=prefill", func(b *testing.B) {
		rt, err := isolate.NewRuntime(context.Background(), isolate.Config{Prefill: isolate.DefaultPrefill})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = rt.Close(context.Background()) })
		benchActivate(b, true, rt)
	})
}

func benchActivate(b *testing.B, live bool, rt *isolate.Runtime) {
	st, err := store.Open(context.Background(), store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	m := openManager(b, b.TempDir(), func(c *testConfig) { c.Store, c.Runtime = st, rt })
	b.Cleanup(func() { _ = st.Close() })
	deploy(b, m, `{"name":"bench","entry":"agent.js","limits":{"idle_seconds":86400}}`,
		`export default { async fetch(request, env) {
			if (request.method === "POST") { await env.state.put("k", {v: 1}); }
			return new Response("hello");
		} };`)
	ctx := context.Background()
	n := 64
	if live {
		n = b.N
	}
	for i := range n {
		id := "s" + strconv.Itoa(i)
		if _, err := m.Call(ctx, "bench", id, isolate.Request{Method: "POST", URL: "http://x/"}); err != nil {
			b.Fatal(err)
		}
		if err := m.Hibernate(ctx, "bench", id); err != nil {
			b.Fatal(err)
		}
	}
	rt.PrepareRestores()
	lat := make([]time.Duration, 0, b.N)
	samples := make([]activationSample, 0, b.N)
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := "s" + strconv.Itoa(i%n)
		var sm activationSample
		sm.begin()
		c0, t0 := benchCPU(), time.Now()
		resp, err := m.Call(withActivationTrace(ctx, &sm.tr), "bench", id, isolate.Request{Method: "GET", URL: "http://x/"})
		d := time.Since(t0)
		lat, cpu = append(lat, d), cpu+benchCPU()-c0
		sm.end(d)
		samples = append(samples, sm)
		if err != nil || resp.Status != 200 {
			b.Fatalf("activate %s: %v %d", id, err, resp.Status)
		}
		if !live {
			b.StopTimer()
			if err := m.Hibernate(ctx, "bench", id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	reportActivationPhases(b, samples)
}

// benchCPU is the CPU time this process has used (user and system).
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
