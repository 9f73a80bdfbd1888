//go:build linux

package gvisor

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// BenchmarkExecPythonFlags compares warm execs of python3 -c 'print(1)'
// in sandboxes booted with different runsc flags, interleaved (one exec in
// each per iteration) so that the shared machine's load hits them alike.
// AGENTCLOUD_BENCH_RUNSC_FLAGS lists the variants, separated by ";", each
// a space-separated flag list ("" is the tier's default): p50 and p25 ms
// per variant. By default it compares the tier's flags with systrap's fast
// path on (the last flag wins).
func BenchmarkExecPythonFlags(b *testing.B) {
	variants := []string{"", "--systrap-disable-fast-path=false"}
	if v, ok := os.LookupEnv("AGENTCLOUD_BENCH_RUNSC_FLAGS"); ok {
		variants = strings.Split(v, ";")
	}
	ctx := context.Background()
	sbs := make([]sandbox.Sandbox, len(variants))
	for i, v := range variants {
		tier := newTestTier(b)
		tier.benchFlags = strings.Fields(v)
		sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{})
		if err != nil {
			b.Fatalf("%q: %v", v, err)
		}
		defer sb.Close()
		sbs[i] = sb
		for range 3 { // warm: the first commands fault the files in
			if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/usr/bin/python3", Args: []string{"-c", "print(1)"}}, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	lat := make([][]time.Duration, len(variants))
	for i := 0; b.Loop(); i++ {
		for k := range sbs {
			j := (i + k) % len(sbs) // rotate who goes first
			t0 := time.Now()
			if code, err := sbs[j].Exec(ctx, sandbox.ExecSpec{Cmd: "/usr/bin/python3", Args: []string{"-c", "print(1)"}}, nil, nil); err != nil || code != 0 {
				b.Fatalf("%q: code=%d err=%v", variants[j], code, err)
			}
			lat[j] = append(lat[j], time.Since(t0))
		}
	}
	for j, v := range variants {
		slices.Sort(lat[j])
		name := strings.NewReplacer("--", "", " ", "+", "=", "_").Replace(v)
		if name == "" {
			name = "default"
		}
		b.ReportMetric(float64(lat[j][len(lat[j])/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(lat[j][len(lat[j])/4].Microseconds())/1000, name+"-p25-ms")
	}
}
