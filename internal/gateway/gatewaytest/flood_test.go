package gatewaytest

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var svgOut = flag.String("flood.svg", "", "write the flood harness plot to this file")

// TestFloodClassesProtectHumans runs the harness in bounded time (about
// 11 s, 14 s under the race detector): a human at a steady low rate while
// 50 agents offer ten times the gateway's capacity.
//
// With priority classes on, the human's p99 as the scheduler counts it
// (service time plus its measured queue wait) stays within 1.5x of its
// unloaded p99; none of its requests is refused and none waits in a queue
// at all; the agents make progress and share it evenly (goodput and
// Jain's index are reported; with a few completions per agent Jain's
// index measures rounding, so the spread is asserted instead). These are counts
// the gateway keeps, so a loaded machine does not move them; the p99s
// timed on the wire, which it does move, are logged with the ratio.
func TestFloodClassesProtectHumans(t *testing.T) {
	if testing.Short() {
		t.Skip("the flood harness runs for about 11 seconds")
	}
	cfg := DefaultFloodConfig()
	cfg.Unloaded, cfg.Phase = 3*time.Second, 4*time.Second
	if raceEnabled {
		// The same shape with fewer requests (capacity 20/s, flood
		// 200/s), each held longer: a cost the race detector can carry
		// on a shared machine.
		cfg.ServiceTime, cfg.HumanRate = 500*time.Millisecond, 1.6
		cfg.Unloaded, cfg.Phase = 3*time.Second, 5*time.Second
	}
	cfg.Dir = t.TempDir()
	cfg.AgentProcess = agentProcess(t)
	cfg.SVGPath = *svgOut
	if cfg.SVGPath == "" {
		cfg.SVGPath = t.TempDir() + "/flood.svg"
	}
	start := time.Now()
	rep, err := Flood(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("flood report after %s:\n%s\nflood/unloaded p99: %.2f counted by the scheduler, %.2f timed on the wire",
		time.Since(start).Round(time.Millisecond), js, rep.SchedRatio(), rep.Ratio())
	if rep.HumanSamples[0] < 3 || rep.HumanSamples[1] < 3 {
		t.Errorf("too few human samples: %v", rep.HumanSamples)
	}
	if rep.HumanRefusedClassesOn != 0 {
		t.Errorf("%d human requests refused with classes on", rep.HumanRefusedClassesOn)
	}
	if rep.HumanQueuedClassesOn != 0 {
		t.Errorf("%d human requests waited in a queue with classes on", rep.HumanQueuedClassesOn)
	}
	if r := rep.SchedRatio(); !(r <= 1.5) {
		t.Errorf("human p99 under flood %.0f ms is %.2fx the unloaded %.0f ms (scheduler's count); want <= 1.5x",
			rep.HumanSchedP99MsFloodClassesOn, r, rep.HumanSchedP99MsUnloaded)
	}
	if rep.AgentSpread > 2 {
		t.Errorf("one agent completed %d requests more than another", rep.AgentSpread)
	}
	if rep.AgentGoodput <= 0 {
		t.Errorf("the agents completed nothing")
	}
	svg, err := os.ReadFile(cfg.SVGPath)
	if err != nil || !strings.HasPrefix(string(svg), "<svg") || !strings.Contains(string(svg), "classes off") {
		t.Fatalf("plot: %v %.80s", err, svg)
	}
}

// BenchmarkFlood runs the whole harness (defaults plus the fairness-only
// phase) and reports its numbers; run it with -benchtime 1x, and
// -flood.svg FILE for the plot.
func BenchmarkFlood(b *testing.B) {
	var rep *FloodReport
	for b.Loop() {
		cfg := DefaultFloodConfig()
		cfg.FairnessOnly = true
		cfg.Dir = b.TempDir()
		cfg.AgentProcess = agentProcess(b)
		cfg.SVGPath = *svgOut
		var err error
		if rep, err = Flood(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	b.Logf("%s", js)
	b.ReportMetric(rep.HumanP99MsUnloaded, "human_p99_ms_unloaded")
	b.ReportMetric(rep.HumanP99MsFloodClassesOn, "human_p99_ms_flood_classes_on")
	b.ReportMetric(rep.HumanP99MsFloodClassesOff, "human_p99_ms_flood_classes_off")
	b.ReportMetric(rep.HumanP99MsFloodFairOnly, "human_p99_ms_flood_fair_only")
	b.ReportMetric(rep.SchedRatio(), "sched_ratio")
	b.ReportMetric(rep.AgentGoodput, "agent_goodput_rps")
	b.ReportMetric(rep.Jain, "jain")
}

// agentProcess is this test binary, which floods as the agents when
// started with AgentProcessEnv (TestMain).
func agentProcess(t testing.TB) []string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe}
}
