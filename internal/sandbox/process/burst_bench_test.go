//go:build linux

package process

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// BenchmarkActivateBurst is the pooled burst without the HTTP front door,
// the store or the pool's refills: 20 sandboxes prepared for a pool
// (outside the timer), then activated at once. It reports the CPU of the
// whole process tree per activation (daemon side, inits), and per prepare
// before it (a prepare's work after its reply may fall in either), when the test
// runs in a cpuacct cgroup of its own (docs/PERFORMANCE.md), which at the
// shared machine's load says more than the wall time.
func BenchmarkActivateBurst(b *testing.B) {
	const n = 20
	tier := newTestTier(b)
	ctx := sandbox.ForPool(b.Context())
	var cpu, prepCPU time.Duration
	var lat []time.Duration
	for b.Loop() {
		b.StopTimer()
		p0, _ := benchTreeCPU()
		prs := make([]sandbox.Prepared, n)
		for i := range prs {
			pr, err := tier.Prepare(ctx, "")
			if err != nil {
				b.Fatal(err)
			}
			prs[i] = pr
		}
		sbs := make([]sandbox.Sandbox, n)
		d := make([]time.Duration, n)
		c0, _ := benchTreeCPU()
		prepCPU += c0 - p0
		b.StartTimer()
		var wg sync.WaitGroup
		for i, pr := range prs {
			wg.Go(func() {
				t0 := time.Now()
				sb, err := pr.Activate(b.Context(), "burst"+strconv.Itoa(i), sandbox.Spec{})
				if err != nil {
					b.Error(err)
					_ = pr.Discard()
					return
				}
				sbs[i], d[i] = sb, time.Since(t0)
			})
		}
		wg.Wait()
		b.StopTimer()
		c1, ok := benchTreeCPU()
		cpu += c1 - c0
		lat = append(lat, d...)
		if !ok {
			cpu = -1 << 62
		}
		for _, sb := range sbs {
			if sb != nil {
				_ = sb.Close()
			}
		}
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "activate-p50-ms")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/activation")
		b.ReportMetric(float64(prepCPU.Microseconds())/1000/float64(len(lat)), "prepare-cpu-ms")
	}
}

// benchTreeCPU is the CPU used so far by the cpuacct cgroup of the test
// binary (false outside one of its own).
func benchTreeCPU() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || f[2] == "/" || !slices.Contains(strings.Split(f[1], ","), "cpuacct") {
			continue
		}
		v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpuacct", f[2], "cpuacct.usage"))
		if err != nil {
			return 0, false
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		return time.Duration(ns), err == nil
	}
	return 0, false
}
