package session

import (
	"fmt"
	rtmetrics "runtime/metrics"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// activationSample is one activation in BenchmarkActivateHibernated: its
// phases (activationTrace), its latency, and the GC cycles and the
// process's minor faults while it ran.
type activationSample struct {
	tr           activationTrace
	total        time.Duration
	gc0, gc      uint64
	flt0, faults int64
}

var gcCycles = []rtmetrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}

func gcCount() uint64 {
	rtmetrics.Read(gcCycles)
	return gcCycles[0].Value.Uint64()
}

func minorFaults() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}

func (s *activationSample) begin() { s.gc0, s.flt0 = gcCount(), minorFaults() }

func (s *activationSample) end(total time.Duration) {
	s.total, s.gc, s.faults = total, gcCount()-s.gc0, minorFaults()-s.flt0
}

// phases names each measured part of a sample; "call" is the rest of the
// latency: the lookup, the first request and its commit.
func (s *activationSample) phases() []struct {
	name string
	d    time.Duration
} {
	r := s.tr.Restore
	p := []struct {
		name string
		d    time.Duration
	}{
		{"record", s.tr.Record}, {"snapshot", s.tr.Snapshot},
		{"decode", r.Decode}, {"instantiate", r.Instantiate}, {"map", r.Map}, {"hot", r.Hot}, {"zero", r.Zero}, {"apply", r.Apply},
		{"state", r.State}, {"configure", r.Configure},
		{"start-other", s.tr.Start - r.Decode - r.Instantiate - r.Map - r.Hot - r.Zero - r.Apply - r.State - r.Configure},
		{"identity", s.tr.Identity},
		{"call", s.total - s.tr.Record - s.tr.Snapshot - s.tr.Start - s.tr.Identity},
	}
	return p
}

// reportActivationPhases reports each phase's p50 and p99 and logs the
// slowest 1% of activations: their mean phases, how many ran during a GC
// cycle, and their minor faults against the rest's.
func reportActivationPhases(b *testing.B, samples []activationSample) {
	if len(samples) < 2 {
		return
	}
	names := samples[0].phases()
	for j, ph := range names {
		ds := make([]time.Duration, len(samples))
		for i := range samples {
			ds[i] = samples[i].phases()[j].d
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), ph.name+"-p50-µs")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), ph.name+"-p99-µs")
	}
	sorted := slices.Clone(samples)
	slices.SortFunc(sorted, func(a, c activationSample) int { return int(a.total - c.total) })
	cut := len(sorted) * 99 / 100
	describe := func(group []activationSample) string {
		var sb strings.Builder
		sums := make([]time.Duration, len(names))
		var gc, flt, runs, bytes int64
		var tot time.Duration
		for _, s := range group {
			for j, ph := range s.phases() {
				sums[j] += ph.d
			}
			if s.gc > 0 {
				gc++
			}
			flt += s.faults
			runs += int64(s.tr.Restore.ApplyRuns)
			bytes += int64(s.tr.Restore.ApplyBytes)
			tot += s.total
		}
		n := time.Duration(len(group))
		fmt.Fprintf(&sb, "n=%d total=%v", len(group), (tot / n).Round(time.Microsecond))
		for j, ph := range names {
			fmt.Fprintf(&sb, " %s=%v", ph.name, (sums[j] / n).Round(time.Microsecond))
		}
		fmt.Fprintf(&sb, " with-gc=%d faults/op=%.0f runs/op=%.0f bytes/op=%.0f", gc,
			float64(flt)/float64(len(group)), float64(runs)/float64(len(group)), float64(bytes)/float64(len(group)))
		return sb.String()
	}
	b.Logf("fastest 99%%: %s", describe(sorted[:cut]))
	b.Logf("slowest 1%%:  %s", describe(sorted[cut:]))
}
