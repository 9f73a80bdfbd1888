package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/pipeline"
)

// BenchmarkDeployToLive measures deploy_to_live_ms: from Submit of a small
// bundle with two passing JS tests by its human owner (auto-approved, no
// new capability) to the new version answering traffic, through every
// stage with the real parts — durable store (fsync on), session manager
// and isolate runtime (template build, scratch session, test isolate),
// Cedar gate, provenance signing, ledger appends, and the session
// manager's current-version switch as the rollout.
func BenchmarkDeployToLive(b *testing.B) {
	ctx := context.Background()
	te := pipeline.OpenTestEnv(b, b.TempDir(), jsTester(30*time.Second))
	first, err := te.Runner().Submit(ctx, pipeline.Submission{Bundle: greeter(b, "bench", "v0", twoTests), Principal: pipeline.Alice})
	if err != nil {
		b.Fatal(err)
	}
	if run := te.Wait(b, first.ID); run.State != api.RunPassed {
		b.Fatalf("first release: %s %s", run.State, run.Error)
	}
	var ms []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		version := fmt.Sprintf("v%d", i+1)
		start := time.Now()
		run, err := te.Runner().Submit(ctx, pipeline.Submission{Bundle: greeter(b, "bench", version, twoTests), Principal: pipeline.Alice})
		if err != nil {
			b.Fatal(err)
		}
		if run = te.Wait(b, run.ID); run.State != api.RunPassed {
			b.Fatalf("%s: %s %s", version, run.State, run.Error)
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		b.StopTimer()
		if got := te.Serving(b, "bench"); got != "hello "+version {
			b.Fatalf("serving %q", got)
		}
		b.StartTimer()
	}
	slices.Sort(ms)
	b.ReportMetric(ms[len(ms)/2], "deploy_to_live_ms_p50")
	b.ReportMetric(ms[(len(ms)*99)/100], "deploy_to_live_ms_p99")
}
