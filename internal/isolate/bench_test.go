package isolate

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

const benchModule = `
let hits = 0;
export default { async fetch(req, env) {
	hits++;
	const u = new URL(req.url);
	return Response.json({ hits, path: u.pathname, q: u.searchParams.get("q") });
} }`

// BenchmarkCompileCached measures NewRuntime with a warm on-disk cache.
func BenchmarkCompileCached(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "cache")
	rt, err := NewRuntime(ctx, Config{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	_ = rt.Close(ctx)
	b.ResetTimer()
	for b.Loop() {
		rt, err := NewRuntime(ctx, Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		_ = rt.Close(ctx)
	}
}

// BenchmarkNewFromModule: instantiate + QuickJS init + prelude + module eval.
func BenchmarkNewFromModule(b *testing.B) {
	rt := testRuntime(b)
	ctx := context.Background()
	for b.Loop() {
		iso, err := rt.New(ctx, Spec{Module: benchModule})
		if err != nil {
			b.Fatal(err)
		}
		_ = iso.Close(ctx)
	}
}

// BenchmarkRestoreFromTemplate: a fresh session from an in-memory template.
func BenchmarkRestoreFromTemplate(b *testing.B) {
	rt := testRuntime(b)
	ctx := context.Background()
	tmpl, err := rt.Template(ctx, Spec{Module: benchModule})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		iso, err := rt.Restore(ctx, Spec{SessionID: "s", Module: benchModule}, nil, tmpl)
		if err != nil {
			b.Fatal(err)
		}
		_ = iso.Close(ctx)
	}
}

// BenchmarkRestoreDelta: decompress a delta snapshot and restore it.
func BenchmarkRestoreDelta(b *testing.B) {
	rt := testRuntime(b)
	ctx := context.Background()
	spec := Spec{Module: benchModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		b.Fatal(err)
	}
	for range 10 {
		get(b, iso, newMemHost(), "http://x/p?q=1")
	}
	snap, err := iso.Snapshot(tmpl)
	if err != nil {
		b.Fatal(err)
	}
	_ = iso.Close(ctx)
	b.ReportMetric(float64(len(snap)), "snapshot-bytes")
	b.ResetTimer()
	for b.Loop() {
		iso, err := rt.Restore(ctx, spec, snap, tmpl)
		if err != nil {
			b.Fatal(err)
		}
		_ = iso.Close(ctx)
	}
}

// BenchmarkFetchWarm: one request round trip on a live isolate.
func BenchmarkFetchWarm(b *testing.B) {
	iso := newIsolate(b, benchModule)
	h := newMemHost()
	ctx := context.Background()
	req := Request{Method: "GET", URL: "http://agent/p?q=1"}
	for b.Loop() {
		if _, err := iso.Fetch(ctx, req, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot reports full and delta snapshot sizes after 10 requests
// and times taking a delta.
func BenchmarkSnapshot(b *testing.B) {
	rt := testRuntime(b)
	ctx := context.Background()
	spec := Spec{Module: benchModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		b.Fatal(err)
	}
	defer iso.Close(ctx)
	for range 10 {
		get(b, iso, newMemHost(), "http://x/p?q=1")
	}
	full, _ := iso.Snapshot(nil)
	b.ReportMetric(float64(len(full)), "full-bytes")
	b.ReportMetric(float64(len(tmpl.Marshal(rt))), "template-bytes")
	b.ReportMetric(float64(iso.MemoryBytes()), "memory-bytes")
	var delta []byte
	for b.Loop() {
		delta, _ = iso.Snapshot(tmpl)
	}
	b.ReportMetric(float64(len(delta)), "delta-bytes")
}

// BenchmarkLiveIsolateMemory keeps 200 isolates (restored from a template,
// one request each) alive and reports the cost per isolate: resident linear
// memory (mincore), Go heap, and process RSS growth.
func BenchmarkLiveIsolateMemory(b *testing.B) {
	rt := testRuntime(b)
	ctx := context.Background()
	spec := Spec{Module: benchModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	const n = 200
	for b.Loop() {
		runtime.GC()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		rss0 := rssBytes()
		isos := make([]*Isolate, 0, n)
		resident := 0
		for range n {
			iso, err := rt.Restore(ctx, spec, nil, tmpl)
			if err != nil {
				b.Fatal(err)
			}
			get(b, iso, newMemHost(), "http://x/p?q=1")
			r, _ := iso.ResidentBytes()
			resident += r
			isos = append(isos, iso)
		}
		runtime.GC()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		rss1 := rssBytes()
		b.ReportMetric(float64(resident)/n, "linear-resident-B/isolate")
		b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/n, "go-heap-B/isolate")
		b.ReportMetric(float64(rss1-rss0)/n, "rss-B/isolate")
		for _, iso := range isos {
			_ = iso.Close(ctx)
		}
	}
}

// rssBytes reads VmRSS from /proc/self/status (0 if unavailable).
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	var kb int64
	for _, line := range splitLines(string(b)) {
		if len(line) > 6 && line[:6] == "VmRSS:" {
			for _, c := range line[6:] {
				if c >= '0' && c <= '9' {
					kb = kb*10 + int64(c-'0')
				}
			}
		}
	}
	return kb << 10
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}
