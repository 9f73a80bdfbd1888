package isolate

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
)

// bareReady starts and waits for rt's bare-module compile.
func bareReady(tb testing.TB, rt *Runtime) wazero.CompiledModule {
	tb.Helper()
	rt.restoreModule()
	rt.bare.wg.Wait()
	m := rt.bare.mod.Load()
	if m == nil {
		tb.Fatal("QuickJS without data segments did not compile")
	}
	return *m
}

// TestBareRestoreClass: restores from the module without data segments
// answer and snapshot exactly as from the full module, from a template, a
// delta, and a full snapshot (no template: the whole memory comes from the
// snapshot), for a plain and a stateful agent; the first Restore starts
// the compile and later ones use it.
func TestBareRestoreClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	if _, ok := withoutData(rt.code); !ok {
		t.Fatal("withoutData found no data section in QuickJS")
	}
	bare := bareReady(t, rt)
	if rt.restoreModule() != bare {
		t.Fatal("restores do not use the bare module once it is compiled")
	}
	for _, mod := range []string{benchModule, counterStateModule} {
		spec := Spec{Module: mod}
		tmpl, err := rt.Template(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		iso, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		get(t, iso, newMemHost(), "http://x/")
		delta, err := iso.Snapshot(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		full, err := iso.Snapshot(nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = iso.Close(ctx)
		for _, c := range []struct {
			name string
			snap []byte
			base *Template
		}{{"template", nil, tmpl}, {"delta", delta, tmpl}, {"full", full, nil}} {
			var out [2]string
			var snaps [2][]byte
			for k, code := range []wazero.CompiledModule{rt.qjs, bare} {
				iso, err := rt.restoreWith(ctx, spec, c.snap, c.base, code)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				out[k] = get(t, iso, newMemHost(), "http://x/q?q=2")
				if snaps[k], err = iso.Snapshot(c.base); err != nil {
					t.Fatal(err)
				}
				_ = iso.Close(ctx)
			}
			if out[0] != out[1] || string(snaps[0]) != string(snaps[1]) {
				t.Fatalf("%s: bare restore differs: %q vs %q, snapshots %d vs %d bytes", c.name, out[0], out[1], len(snaps[0]), len(snaps[1]))
			}
		}
	}
	for _, bad := range [][]byte{nil, []byte("\x00asm"), append([]byte("\x00asm\x01\x00\x00\x00\x0b"), 0xff, 0xff, 0xff, 0xff, 0x0f)} {
		if _, ok := withoutData(bad); ok {
			t.Fatalf("withoutData accepted %x", bad)
		}
	}
}

// BenchmarkRestoreBare restores a hibernated session and serves one
// request, alternating the full and the bare module in one loop; it
// reports each one's p50.
func BenchmarkRestoreBare(b *testing.B) {
	rt, spec, tmpl, iso := benchIsolate(b)
	ctx := context.Background()
	h := newMemHost()
	get(b, iso, h, "http://x/")
	snap, err := iso.Snapshot(tmpl)
	if err != nil {
		b.Fatal(err)
	}
	_ = iso.Close(ctx)
	mods := []wazero.CompiledModule{rt.qjs, bareReady(b, rt)}
	var lat [2][]time.Duration
	n := 0
	for b.Loop() {
		k := n % 2
		n++
		t0 := time.Now()
		iso, err := rt.restoreWith(ctx, spec, snap, tmpl, mods[k])
		if err != nil {
			b.Fatal(err)
		}
		get(b, iso, h, "http://x/")
		lat[k] = append(lat[k], time.Since(t0))
		_ = iso.Close(ctx)
	}
	for k, name := range []string{"full", "bare"} {
		if len(lat[k]) > 0 {
			slices.Sort(lat[k])
			b.ReportMetric(float64(lat[k][len(lat[k])/2].Microseconds()), name+"-p50-µs")
		}
	}
}
