package isolate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// loopWAT counts its loop's entries in the exported global n; run(k) loops
// until n reaches k.
const loopWAT = `(module
  (import "env" "host_interrupt" (func $yield (result i32)))
  (global $n (export "n") (mut i32) (i32.const 0))
  (func (export "run") (param $k i32)
    (loop $l
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (br_if $l (i32.lt_u (global.get $n) (local.get $k))))))`

// watSource converts WebAssembly text with wat2wasm, skipping the test when
// the tool is missing (Debian: apt-get install wabt).
func watSource(t testing.TB, src string) []byte {
	t.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		testdeps.Missing(t, "wat2wasm not found (apt-get install wabt)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tool, "--debug-names", in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loopModule is loopWAT instrumented with the engine's yield, instantiated
// in a runtime of its own (no WithCloseOnContextDone: the loop checks alone
// stop it) whose yield runs onYield.
type loopModule struct {
	run     api.Function
	n       api.Global
	pre     preempter
	yields  int
	onYield func(*loopModule)
}

func newLoopModule(t *testing.T) *loopModule {
	t.Helper()
	code, err := rewriteWasm(watSource(t, loopWAT), rewriteOpts{stopLoops: true, yield: &engineYield})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { _ = r.Close(ctx) })
	lm := &loopModule{}
	_, err = r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
			lm.yields++
			if lm.onYield != nil {
				lm.onYield(lm)
			}
			s[0] = 0
		}), nil, []api.ValueType{api.ValueTypeI32}).Export("host_interrupt").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Instantiate(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	lm.run, lm.n = m.ExportedFunction("run"), m.ExportedGlobal("n")
	var ok bool
	if lm.pre.stop, ok = m.ExportedGlobal(stopGlobalName).(api.MutableGlobal); !ok {
		t.Fatal("no stop global")
	}
	if lm.pre.tick, ok = m.ExportedGlobal(tickGlobalName).(api.MutableGlobal); !ok {
		t.Fatal("no tick global")
	}
	return lm
}

// TestLoopCheckClass: the loop checks with a yield read the stop global
// only when their countdown ends. They must still yield exactly every
// yieldEvery loop entries, a fire must stop the guest at the next loop
// entry (it sets the tick), a raised stop whose tick write was lost (the
// guest's store raced with it) at most yieldEvery entries later, and a
// preempter fired from another goroutine must end an endless loop.
func TestLoopCheckClass(t *testing.T) {
	ctx := context.Background()
	t.Run("yields every yieldEvery entries", func(t *testing.T) {
		lm := newLoopModule(t)
		if _, err := lm.run.Call(ctx, 3*yieldEvery); err != nil {
			t.Fatal(err)
		}
		if lm.yields != 3 || lm.n.Get() != 3*yieldEvery {
			t.Fatalf("%d yields in %d loop entries, want 3 in %d", lm.yields, lm.n.Get(), 3*yieldEvery)
		}
	})
	t.Run("a fire traps at the next entry", func(t *testing.T) {
		lm := newLoopModule(t)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		disarm := lm.pre.arm(cctx)
		lm.onYield = func(lm *loopModule) {
			if lm.yields == 1 {
				cancel()
				lm.pre.firing.Wait() // the fire has raised stop and set the tick
			}
		}
		_, err := lm.run.Call(ctx, 1<<31)
		fired := lm.pre.fired.Load()
		disarm()
		if err == nil || !fired {
			t.Fatalf("err = %v, fired = %v; want a trap after the fire", err, fired)
		}
		// The check of entry yieldEvery fired; entry yieldEvery+1's traps
		// before its body counts it.
		if got := lm.n.Get(); got != yieldEvery {
			t.Fatalf("%d loop bodies ran, want %d (a trap at the entry after the fire)", got, yieldEvery)
		}
	})
	t.Run("a lost tick write delays the trap by yieldEvery at most", func(t *testing.T) {
		lm := newLoopModule(t)
		lm.onYield = func(lm *loopModule) { lm.pre.stop.Set(1) } // no tick write
		if _, err := lm.run.Call(ctx, 1<<31); err == nil {
			t.Fatal("no trap")
		}
		if got := lm.n.Get(); got != 2*yieldEvery-1 {
			t.Fatalf("%d loop bodies ran, want %d (a trap at the next yield)", got, 2*yieldEvery-1)
		}
	})
	t.Run("a fire from another goroutine ends an endless loop", func(t *testing.T) {
		for range 20 {
			lm := newLoopModule(t)
			cctx, cancel := context.WithCancel(ctx)
			disarm := lm.pre.arm(cctx)
			go cancel()
			_, err := lm.run.Call(ctx, 0xffffffff)
			fired := lm.pre.fired.Load()
			disarm()
			if err == nil || !fired {
				t.Fatalf("err = %v, fired = %v after %d entries", err, fired, lm.n.Get())
			}
		}
	})
}

// shiftWAT uses every place a function index can sit: calls, an active
// and a passive element segment, a declared ref.func, a funcref global's
// initializer, the start function, exports and the name section.
const shiftWAT = `(module
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (type $f (func (result i32)))
  (table $t 8 funcref)
  (global $started (mut i32) (i32.const 0))
  (global $g funcref (ref.func $seven))
  (elem (i32.const 0) $one $two)
  (elem $p func $three $four)
  (elem declare func $five)
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 20))
  (func $three (result i32) (i32.const 300))
  (func $four (result i32) (i32.const 4000))
  (func $five (result i32) (i32.const 50000))
  (func $seven (result i32) (i32.const 700000))
  (func $start (global.set $started (i32.const 8000000)))
  (start $start)
  (func $spin (param $k i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $k)))))
  (func $run (export "run") (param $k i32) (result i32)
    (call $spin (local.get $k))
    (table.init $t $p (i32.const 2) (i32.const 0) (i32.const 2))
    (table.set $t (i32.const 4) (ref.func $five))
    (table.set $t (i32.const 5) (global.get $g))
    (i32.add (call $twice (call_indirect $t (type $f) (i32.const 0)))
    (i32.add (call_indirect $t (type $f) (i32.const 1))
    (i32.add (call_indirect $t (type $f) (i32.const 2))
    (i32.add (call_indirect $t (type $f) (i32.const 3))
    (i32.add (call_indirect $t (type $f) (i32.const 4))
    (i32.add (call_indirect $t (type $f) (i32.const 5))
      (global.get $started)))))))))`

// TestYieldImportShiftClass: adding the yield import to a raw module moves
// every defined function's index; a place the rewrite missed would call
// the wrong function (or fail validation). The rewritten module must give
// the original's answer, keep its function names, and call the yield; a
// malformed element section is refused, not misread.
func TestYieldImportShiftClass(t *testing.T) {
	ctx := context.Background()
	src := watSource(t, shiftWAT)
	run := func(code []byte, yields *int) (uint64, string) {
		t.Helper()
		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		twice := func(_ context.Context, _ api.Module, s []uint64) { s[0] *= 2 }
		if _, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(twice), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
			Export("twice").Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
		yield := func(_ context.Context, _ api.Module, s []uint64) { *yields++; s[0] = 0 }
		if _, err := r.NewHostModuleBuilder(wasmYield.module).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(yield), nil, []api.ValueType{api.ValueTypeI32}).
			Export(wasmYield.name).Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := r.Instantiate(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.ExportedFunction("run").Call(ctx, 3*yieldEvery)
		if err != nil {
			t.Fatal(err)
		}
		return res[0], m.ExportedFunction("run").Definition().DebugName()
	}
	var base, yields int
	want, wantName := run(src, &base)
	code, err := rewriteWasm(src, rewriteOpts{stopLoops: true, addYield: &wasmYield})
	if err != nil {
		t.Fatal(err)
	}
	got, gotName := run(code, &yields)
	if got != want || want != 2+20+300+4000+50000+700000+8000000 {
		t.Fatalf("run = %d, want %d (original %d)", got, 2+20+300+4000+50000+700000+8000000, want)
	}
	if gotName != wantName {
		t.Fatalf("run's name %q, want %q", gotName, wantName)
	}
	if yields != 3 {
		t.Fatalf("%d yields over %d loop entries, want 3", yields, 3*yieldEvery)
	}

	// An element segment of an unknown kind: find the section and corrupt
	// its first segment's flags.
	bad := append([]byte(nil), src...)
	r := &wasmReader{b: bad, p: 8}
	for r.p < len(r.b) {
		id, size := r.byte(), int(r.u32())
		if id == 9 {
			sr := &wasmReader{b: bad[r.p : r.p+size]}
			sr.u32()
			bad[r.p+sr.p] = 9
			break
		}
		r.skip(size)
	}
	if _, err := rewriteWasm(bad, rewriteOpts{stopLoops: true, addYield: &wasmYield}); !errors.Is(err, errInstrument) {
		t.Fatalf("bad element segment: err = %v, want errInstrument", err)
	}
}

// BenchmarkWasmLoop compares a raw wasm agent's loop before and after it
// got the yield import, in one process, taking turns: "closeondone" is the
// stop check in a runtime made WithCloseOnContextDone (its compiled code
// leaves for Go at every loop header), "yield" the loop checks with the
// added import in a runtime without it. Each reports its median ns per
// loop iteration of a counting loop of 100,000.
func BenchmarkWasmLoop(b *testing.B) {
	const spinWAT = `(module
  (func (export "spin") (param $k i32) (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $k))))))`
	ctx := context.Background()
	src := watSource(b, spinWAT)
	mk := func(closeOnDone bool, o rewriteOpts) api.Function {
		code, err := rewriteWasm(src, o)
		if err != nil {
			b.Fatal(err)
		}
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(closeOnDone))
		b.Cleanup(func() { _ = r.Close(ctx) })
		if _, err := r.NewHostModuleBuilder(wasmYield.module).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, s []uint64) { s[0] = 0 }),
				nil, []api.ValueType{api.ValueTypeI32}).
			Export(wasmYield.name).Instantiate(ctx); err != nil {
			b.Fatal(err)
		}
		m, err := r.Instantiate(ctx, code)
		if err != nil {
			b.Fatal(err)
		}
		return m.ExportedFunction("spin")
	}
	fns := []struct {
		name string
		fn   api.Function
	}{
		{"closeondone", mk(true, rewriteOpts{stopLoops: true})},
		{"yield", mk(false, rewriteOpts{stopLoops: true, addYield: &wasmYield})},
	}
	const n = 100_000
	samples := make([][]float64, len(fns))
	b.ResetTimer()
	for r := 0; r*len(fns) < b.N || r < 2; r++ {
		for k := range fns {
			i := (k + r) % len(fns)
			t0 := time.Now()
			if _, err := fns[i].fn.Call(ctx, n); err != nil {
				b.Fatal(err)
			}
			if r > 0 {
				samples[i] = append(samples[i], float64(time.Since(t0).Nanoseconds())/n)
			}
		}
	}
	for i, f := range fns {
		slices.Sort(samples[i])
		b.ReportMetric(samples[i][len(samples[i])/2], f.name+"-ns/iter")
	}
}

// FuzzRewriteYield: rewriting any input with the added yield import never
// panics, and a module wazero compiles still compiles rewritten.
func FuzzRewriteYield(f *testing.F) {
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01\x07\x0a\x01\x06memory\x02\x00"))
	if _, err := exec.LookPath("wat2wasm"); err == nil {
		f.Add(watSource(f, shiftWAT))
		f.Add(watSource(f, loopWAT))
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { _ = r.Close(ctx) })
	f.Fuzz(func(t *testing.T, src []byte) {
		out, err := rewriteWasm(src, rewriteOpts{stopLoops: true, addYield: &wasmYield})
		if err != nil {
			return
		}
		c, err := r.CompileModule(ctx, src)
		if err != nil {
			return
		}
		_ = c.Close(ctx)
		c, err = r.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("the original compiles, the rewritten does not: %v", err)
		}
		_ = c.Close(ctx)
	})
}
