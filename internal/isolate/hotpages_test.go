package isolate

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkActivateHotPages restores a hibernated hello session and serves
// one request, alternating learned hot pages off and on in the same loop
// so machine load hits both alike; it reports each one's p50/p99.
func BenchmarkActivateHotPages(b *testing.B) {
	rt, spec, tmpl := benchTemplate(b)
	ctx := context.Background()
	h := newMemHost()
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		b.Fatal(err)
	}
	get(b, iso, h, "http://x/")
	snap, err := iso.Snapshot(tmpl) // learns the hot pages
	if err != nil {
		b.Fatal(err)
	}
	_ = iso.Close(ctx)
	if tmpl.hot.Load() == nil {
		b.Skip("no hot pages learned (no memfd or pagemap here)")
	}
	defer func() { hotPagesOff = false }()
	var lat [2][]time.Duration
	n := 0
	for b.Loop() {
		off := n%2 == 0
		n++
		hotPagesOff = off
		t0 := time.Now()
		iso, err := rt.Restore(ctx, spec, snap, tmpl)
		if err != nil {
			b.Fatal(err)
		}
		get(b, iso, h, "http://x/")
		k := 1
		if off {
			k = 0
		}
		lat[k] = append(lat[k], time.Since(t0))
		_ = iso.Close(ctx)
	}
	for k, name := range []string{"off", "on"} {
		if len(lat[k]) == 0 {
			continue
		}
		slices.Sort(lat[k])
		b.ReportMetric(float64(lat[k][len(lat[k])/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(lat[k][len(lat[k])*99/100].Microseconds()), name+"-p99-µs")
	}
	b.ReportMetric(float64(len(tmpl.hot.Load().write)), "hot-runs")
	b.ReportMetric(float64(len(tmpl.hot.Load().read)), "read-runs")
}

// TestHotPagesClass: a template learns its hot pages from the first
// session that hibernates; sessions restored with them populated answer
// and hibernate exactly as with them off (same heap, same snapshot), for a
// fresh session, a delta and a counter that keeps state in its heap.
func TestHotPagesClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	for _, mod := range []string{benchModule, counterStateModule} {
		spec := Spec{Module: mod}
		tmpl, err := rt.Template(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		h := newMemHost()
		iso, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		get(t, iso, h, "http://x/")
		snap, err := iso.Snapshot(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		_ = iso.Close(ctx)
		if tmpl.hot.Load() == nil {
			t.Skip("no hot pages learned (no memfd or pagemap here)")
		}
		var out [2]string
		var snaps [2][]byte
		for k, off := range []bool{true, false} {
			hotPagesOff = off
			for _, s := range [][]byte{nil, snap} {
				iso, err := rt.Restore(ctx, spec, s, tmpl)
				if err != nil {
					t.Fatal(err)
				}
				out[k] += get(t, iso, newMemHost(), "http://x/q?q=2") + "|"
				b, err := iso.Snapshot(tmpl)
				if err != nil {
					t.Fatal(err)
				}
				snaps[k] = append(snaps[k], b...)
				_ = iso.Close(ctx)
			}
		}
		hotPagesOff = false
		if out[0] != out[1] {
			t.Fatalf("answers differ with hot pages: %q vs %q", out[0], out[1])
		}
		if string(snaps[0]) != string(snaps[1]) {
			t.Fatalf("snapshots differ with hot pages (%d vs %d bytes)", len(snaps[0]), len(snaps[1]))
		}
	}
}
