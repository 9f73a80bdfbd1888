package isolate

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestInfiniteLoopTimesOut(t *testing.T) {
	iso := newIsolate(t, `export default { fetch() { while (true) {} } }`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := iso.Fetch(ctx, Request{URL: "http://x/"}, newMemHost())
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if _, err := iso.Fetch(context.Background(), Request{URL: "http://x/"}, newMemHost()); !errors.Is(err, ErrDead) {
		t.Fatalf("reuse after timeout: %v, want ErrDead", err)
	}
}

func TestTimerWaitTimesOut(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch() { await new Promise(r => setTimeout(r, 60000)); return new Response("late") } }`)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := iso.Fetch(ctx, Request{URL: "http://x/"}, newMemHost()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestMemoryBomb(t *testing.T) {
	for name, bomb := range map[string]string{
		"array":  `const a = []; while (true) a.push({ x: a.length, s: "y".repeat(100) + a.length });`,
		"string": `const k = []; while (true) k.push("x".repeat(1 << 20) + k.length);`,
		"buffer": `const a = []; while (true) a.push(new ArrayBuffer(1 << 20));`,
	} {
		t.Run(name, func(t *testing.T) {
			iso, err := testRuntime(t).New(context.Background(), Spec{MemoryMiB: 16,
				Module: `export default { fetch() { ` + bomb + ` } }`})
			if err != nil {
				t.Fatal(err)
			}
			defer iso.Close(context.Background())
			_, err = iso.Fetch(ctxTimeout(t, 20*time.Second), Request{URL: "http://x/"}, newMemHost())
			if !errors.Is(err, ErrMemoryExceeded) {
				t.Fatalf("err = %v, want ErrMemoryExceeded", err)
			}
			if iso.Err() == nil {
				t.Fatal("isolate still alive after memory limit")
			}
		})
	}
}

func TestDeepRecursionIsRangeError(t *testing.T) {
	iso := newIsolate(t, `
function f(n) { return n === 0 ? 0 : 1 + f(n - 1); }
export default { fetch(req) {
	if (req.url.endsWith("/catch")) {
		try { f(1e7); } catch (e) { return new Response(e.name + ": " + e.message); }
	}
	return new Response(String(f(1e7)));
} }`)
	h := newMemHost()
	got := get(t, iso, h, "http://x/catch")
	if !strings.HasPrefix(got, "RangeError") {
		t.Fatalf("caught %q, want RangeError", got)
	}
	_, err := iso.Fetch(ctxTimeout(t, 10*time.Second), Request{URL: "http://x/"}, h)
	var je *JSError
	if !errors.As(err, &je) || je.Name != "RangeError" {
		t.Fatalf("err = %v, want JS RangeError", err)
	}
	// Still usable.
	if got := get(t, iso, h, "http://x/catch"); !strings.HasPrefix(got, "RangeError") {
		t.Fatalf("after overflow: %q", got)
	}
}

func TestJSExceptionSurfaces(t *testing.T) {
	iso := newIsolate(t, `
function inner() { throw new TypeError("boom " + 42); }
export default { async fetch() { inner(); } }`)
	_, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{URL: "http://x/"}, newMemHost())
	var je *JSError
	if !errors.As(err, &je) {
		t.Fatalf("err = %v, want *JSError", err)
	}
	if je.Name != "TypeError" || je.Message != "boom 42" || !strings.Contains(je.Stack, "inner") {
		t.Fatalf("JSError = %+v", je)
	}
	if iso.Err() != nil {
		t.Fatalf("isolate died on a JS exception: %v", iso.Err())
	}
}

func TestModuleErrors(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	_, err := rt.New(ctx, Spec{Module: `export default {`})
	var je *JSError
	if !errors.As(err, &je) || je.Name != "SyntaxError" {
		t.Fatalf("syntax error: %v", err)
	}
	_, err = rt.New(ctx, Spec{Module: `throw new Error("init failed")`})
	if !errors.As(err, &je) || je.Message != "init failed" {
		t.Fatalf("throwing module: %v", err)
	}
	iso, err := rt.New(ctx, Spec{Module: `export default {}`})
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(ctx)
	if _, err := iso.Fetch(ctx, Request{URL: "http://x/"}, newMemHost()); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("no handler: %v", err)
	}
	if err := iso.Alarm(ctx, newMemHost()); !errors.Is(err, ErrNoHandler) {
		t.Fatalf("no alarm handler: %v", err)
	}
	iso2 := newIsolate(t, `export default { fetch() { return "not a response" } }`)
	if _, err := iso2.Fetch(ctx, Request{URL: "http://x/"}, newMemHost()); !errors.As(err, &je) || je.Name != "TypeError" {
		t.Fatalf("bad return: %v", err)
	}
	iso3 := newIsolate(t, `export default { fetch() { return new Promise(() => {}) } }`)
	if _, err := iso3.Fetch(ctx, Request{URL: "http://x/"}, newMemHost()); !errors.As(err, &je) {
		t.Fatalf("never settles: %v", err)
	}
}

func TestCooperativeTimeout(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{CooperativeTimeouts: true, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	iso, err := rt.New(ctx, Spec{Module: `export default { fetch() { try { while (true) {} } catch (e) { return new Response("caught") } } }`})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := iso.Fetch(cctx, Request{URL: "http://x/"}, newMemHost()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout (the interrupt must not be catchable)", err)
	}
}

// TestNativeLoopPreempted: a long loop inside QuickJS's C code (no bytecode
// runs, so the interrupt handler is never polled, and no memory is
// allocated) still stops at the deadline through the loop-header checks.
func TestNativeLoopPreempted(t *testing.T) {
	iso := newIsolate(t, `export default { fetch() { return new Response(String(new Array(2 ** 31).join("").length)) } }`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := iso.Fetch(ctx, Request{URL: "http://x/"}, newMemHost())
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("preemption took %v", d)
	}
	if iso.Err() == nil {
		t.Fatal("isolate alive after preemption")
	}
}

// TestPreemptDoesNotLeak: a context that ends after a call returned must
// not disturb the next call.
func TestPreemptDoesNotLeak(t *testing.T) {
	iso := newIsolate(t, `export default { fetch() { let s = 0; for (let i = 0; i < 1e5; i++) s += i; return new Response(String(s)) } }`)
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := iso.Fetch(ctx, Request{URL: "http://x/"}, newMemHost()); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
}

func TestInstrumentRejectsGarbage(t *testing.T) {
	if _, err := rewriteWasm([]byte("not wasm"), rewriteOpts{stopLoops: true, addYield: &wasmYield}); !errors.Is(err, errInstrument) {
		t.Fatalf("err = %v", err)
	}
}

// TestNativeLoopLetsTheWorldStopClass: a guest loop inside QuickJS's C code
// that would run for ages (join over 2^53 - 1 indices of a plain object:
// no bytecode, so no interrupt poll) while another goroutine keeps asking
// for garbage collections. Go cannot stop a goroutine inside compiled wasm,
// so every collection's stop-the-world waits on the guest; without the
// loop checks' periodic call into Go (instrument.go, yieldEvery) the
// goroutine that raises the stop global is stopped too and the process
// hangs (the test then fails by the package's timeout). With it, the
// collections run and the call ends at its deadline.
func TestNativeLoopLetsTheWorldStopClass(t *testing.T) {
	iso := newIsolate(t, `export default { fetch() { return new Response(Array.prototype.join.call({ length: 2 ** 53 - 1 }, "")) } }`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := iso.Fetch(ctx, Request{URL: "http://x/"}, newMemHost())
		done <- err
	}()
	for gcs := 0; ; gcs++ {
		runtime.GC() // a stop-the-world, often while the guest loops
		select {
		case err := <-done:
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("err = %v, want ErrTimeout", err)
			}
			if gcs == 0 {
				t.Log("the call ended before a collection finished")
			}
			return
		default:
		}
	}
}

// The loop checks' yield must be the engine's () -> i32 import; any other
// is refused, so the runtime falls back rather than call the wrong thing.
func TestYieldImportClass(t *testing.T) {
	if _, err := rewriteWasm(engineWasm, rewriteOpts{stopLoops: true, yield: &engineYield}); err != nil {
		t.Fatalf("engine with its yield: %v", err)
	}
	for _, ref := range []importRef{{"env", "nope"}, {"env", "host_call"}, {"wasi_snapshot_preview1", "fd_close"}, {"", ""}} {
		if _, err := rewriteWasm(engineWasm, rewriteOpts{stopLoops: true, yield: &ref}); !errors.Is(err, errInstrument) {
			t.Errorf("yield %v: err = %v, want errInstrument", ref, err)
		}
	}
}
