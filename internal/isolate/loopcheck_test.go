package isolate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
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
func watSource(t *testing.T, src string) []byte {
	t.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not found (apt-get install wabt)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tool, in, "-o", out).CombinedOutput(); err != nil {
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
