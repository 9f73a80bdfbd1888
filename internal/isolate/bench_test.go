package isolate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
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
	rt, spec, tmpl, iso := benchIsolate(b)
	ctx := context.Background()
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

// BenchmarkFetchWarm: one request round trip on a live isolate. cpu-ns/op
// is the process's CPU time per call (see benchFetch).
func BenchmarkFetchWarm(b *testing.B) {
	benchFetchURL(b, benchModule, "http://agent/p?q=1")
}

// BenchmarkFetchLoop: a handler that runs a JavaScript loop of 10,000
// iterations, so the loop checks (instrument.go) run often per call.
func BenchmarkFetchLoop(b *testing.B) {
	benchFetch(b, `export default { fetch() { let s = 0; for (let i = 0; i < 10000; i++) s += i & 7; return new Response(String(s)) } }`)
}

// BenchmarkFetchHello: the smallest round trip, a synchronous handler
// returning a constant text response. cpu-ns/op is the process's CPU time
// per call, which other load on the machine changes less than ns/op.
func BenchmarkFetchHello(b *testing.B) {
	benchFetch(b, `export default { fetch() { return new Response("hello") } }`)
}

// BenchmarkFetchHelloAsync is BenchmarkFetchHello with an async handler,
// as most Workers write it (and the bench's hello-world agent).
func BenchmarkFetchHelloAsync(b *testing.B) {
	benchFetch(b, `export default { async fetch() { return new Response("hello") } }`)
}

func benchFetch(b *testing.B, module string) {
	benchFetchURL(b, module, "http://agent/")
}

func benchFetchURL(b *testing.B, module, url string) {
	iso := newIsolate(b, module)
	h := newMemHost()
	ctx := context.Background()
	req := Request{Method: "GET", URL: url}
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		if _, err := iso.Fetch(ctx, req, h); err != nil {
			b.Fatal(err)
		}
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkSnapshot reports full and delta snapshot sizes after 10 requests
// and times taking a delta.
func BenchmarkSnapshot(b *testing.B) {
	rt, _, tmpl, iso := benchIsolate(b)
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
// one request each) alive and reports the cost per isolate: Go heap, and
// from /proc/self/smaps_rollup the private dirty memory (the isolate's own
// RAM), PSS (that plus its share of the template's pages) and RSS growth.
// "trimmed" calls Isolate.Trim on each, as a session layer would for idle
// sessions. Memory the Go heap freed is returned to the OS before each
// reading, so the numbers are what the isolates hold.
func BenchmarkLiveIsolateMemory(b *testing.B) {
	for _, trim := range []bool{false, true} {
		name := "live"
		if trim {
			name = "trimmed"
		}
		b.Run(name, func(b *testing.B) { benchLiveMemory(b, trim) })
	}
}

func benchLiveMemory(b *testing.B, trim bool) {
	rt, spec, tmpl := benchTemplate(b)
	ctx := context.Background()
	const n = 200
	for b.Loop() {
		debug.FreeOSMemory() // GC and return freed heap, so RSS reads are stable
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		s0 := smapsRollup()
		isos := make([]*Isolate, 0, n)
		for range n {
			iso, err := rt.Restore(ctx, spec, nil, tmpl)
			if err != nil {
				b.Fatal(err)
			}
			get(b, iso, newMemHost(), "http://x/p?q=1")
			if trim {
				if err := iso.Trim(); err != nil {
					b.Fatal(err)
				}
			}
			isos = append(isos, iso)
		}
		debug.FreeOSMemory() // GC and return freed heap, so RSS reads are stable
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		s1 := smapsRollup()
		b.ReportMetric(float64(int64(ms1.HeapAlloc)-int64(ms0.HeapAlloc))/n, "go-heap-B/isolate")
		b.ReportMetric(float64(s1["Private_Dirty"]-s0["Private_Dirty"])/n, "private-dirty-B/isolate")
		b.ReportMetric(float64(s1["Pss"]-s0["Pss"])/n, "pss-B/isolate")
		b.ReportMetric(float64(s1["Rss"]-s0["Rss"])/n, "rss-B/isolate")
		for _, iso := range isos {
			_ = iso.Close(ctx)
		}
	}
}

// smapsRollup reads /proc/self/smaps_rollup as bytes per field (empty if
// unavailable).
func smapsRollup() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return out
	}
	for _, line := range splitLines(string(b)) {
		var name string
		var kb int64
		if n, _ := fmt.Sscanf(line, "%s %d kB", &name, &kb); n == 2 {
			out[strings.TrimSuffix(name, ":")] = kb << 10
		}
	}
	return out
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

// counterStateModule keeps its count in state, like a typical agent.
const counterStateModule = `
export default { async fetch(req, env) {
	const n = ((await env.state.get("n")) || 0) + 1;
	await env.state.put("n", n);
	return new Response(String(n));
} }`

// BenchmarkActivate measures waking a hibernated session: restore from a
// delta snapshot (or from the template alone) plus its first response, and
// reports p50/p99 latency and the hibernated size.
func BenchmarkActivate(b *testing.B) {
	for _, c := range []struct {
		name, mod string
		warm      int // requests before hibernating; 0: template only
	}{
		{"hello-template", `export default { fetch() { return new Response("hello") } }`, 0},
		{"hello-delta", `export default { fetch() { return new Response("hello") } }`, 1},
		{"counter-delta", counterStateModule, 5},
	} {
		b.Run(c.name, func(b *testing.B) {
			rt := testRuntime(b)
			ctx := context.Background()
			spec := Spec{Module: c.mod}
			tmpl, err := rt.Template(ctx, spec)
			if err != nil {
				b.Fatal(err)
			}
			h := newMemHost()
			var snap []byte
			if c.warm > 0 {
				iso, err := rt.Restore(ctx, spec, nil, tmpl)
				if err != nil {
					b.Fatal(err)
				}
				for range c.warm {
					get(b, iso, h, "http://x/")
				}
				if snap, err = iso.Snapshot(tmpl); err != nil {
					b.Fatal(err)
				}
				_ = iso.Close(ctx)
			}
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				iso, err := rt.Restore(ctx, spec, snap, tmpl)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := iso.Fetch(ctx, Request{URL: "http://x/"}, h); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
				_ = iso.Close(ctx)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(len(snap)), "hibernated-bytes")
		})
	}
}

// BenchmarkTemplateMarshal times encoding a fresh template image (done once
// per deployed version, on the deploy path) and reports its size.
func BenchmarkTemplateMarshal(b *testing.B) {
	rt := testRuntime(b)
	tmpl, err := rt.Template(context.Background(), Spec{Module: benchModule})
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	for b.Loop() {
		out = tmpl.Marshal(rt)
	}
	b.ReportMetric(float64(len(out)), "template-bytes")
}

// BenchmarkLoopCheck compares loop checks (instrument.go) in one process,
// taking turns in batches of calls so that other load on the machine hits
// each alike: "stoponly" tests the stop global at every loop header and
// never yields (a lower bound; it lets a native loop hold every GC),
// "every" also counts the yield's tick at every header (the check before
// the countdown read stop only at zero), "countdown" is loopCheck. Each
// reports its median thread CPU time per BenchmarkFetchWarm call.
func BenchmarkLoopCheck(b *testing.B) {
	checks := []struct {
		name string
		fn   func(stop uint32, yieldFunc int64) []byte
	}{
		{"stoponly", func(stop uint32, _ int64) []byte { return loopCheck(stop, -1) }},
		{"every", loopCheckEveryEntry},
		{"countdown", loopCheck},
	}
	ctx := context.Background()
	isos := make([]*Isolate, len(checks))
	for i, c := range checks {
		loopCheckFn = c.fn
		rt, err := NewRuntime(ctx, Config{CacheDir: filepath.Join(os.TempDir(), "agentcloud-isolate-test-cache")})
		loopCheckFn = loopCheck
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = rt.Close(ctx) })
		if isos[i], err = rt.New(ctx, Spec{SessionID: "s1", Agent: "a1", Module: benchModule}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	h := newMemHost()
	req := Request{Method: "GET", URL: "http://agent/p?q=1"}
	const batch = 50
	samples := make([][]float64, len(checks))
	b.ResetTimer()
	for r := 0; r*batch*len(checks) < b.N || r < 2; r++ {
		for k := range isos {
			i := (k + r) % len(isos)
			t0, _ := threadCPU()
			for range batch {
				if _, err := isos[i].Fetch(ctx, req, h); err != nil {
					b.Fatal(err)
				}
			}
			t1, _ := threadCPU()
			if r > 0 { // the first round warms up
				samples[i] = append(samples[i], float64(t1-t0)/batch)
			}
		}
	}
	for i, c := range checks {
		slices.Sort(samples[i])
		b.ReportMetric(samples[i][len(samples[i])/2], c.name+"-cpu-ns/call")
	}
}

// loopCheckEveryEntry is the loop check before loopCheck read the stop
// global only at the end of the countdown: stop at every loop header, then
// the tick.
func loopCheckEveryEntry(stop uint32, yieldFunc int64) []byte {
	check := loopCheck(stop, -1)
	tick := stop + 1
	check = appendU32(append(check, 0x23), tick)  // global.get tick
	check = append(check, 0x41, 0x01, 0x6b, 0x24) // i32.const 1, i32.sub, global.set tick
	check = appendU32(check, tick)
	check = appendU32(append(check, 0x23), tick)  // global.get tick
	check = append(check, 0x45, 0x04, 0x40, 0x41) // i32.eqz, if (empty), i32.const yieldEvery
	check = appendS32(check, yieldEvery)
	check = appendU32(append(check, 0x24), tick)              // global.set tick
	check = appendU32(append(check, 0x10), uint32(yieldFunc)) // call yield
	return append(check, 0x1a, 0x0b)                          // drop, end
}
