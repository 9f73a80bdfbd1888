package isolate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// buildWAT assembles isolatetest/name.wat (shared with the instance
// conformance suite) with watSource.
func buildWAT(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("isolatetest", name+".wat"))
	if err != nil {
		t.Fatal(err)
	}
	return watSource(t, string(src))
}

func TestWasmAgent(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := WasmSpec{SessionID: "w1", Agent: "counter", Module: buildWAT(t, "counter"), Env: map[string]string{"K": "V"}}
	w, err := rt.NewWasm(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	h := newMemHost()
	for want := 1; want <= 2; want++ {
		resp, err := w.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "POST", URL: "https://agent/run?x=1",
			Headers: [][2]string{{"X-A", "b"}}, Body: []byte("ignored")}, h)
		if err != nil {
			t.Fatal(err)
		}
		body := string(resp.Body)
		if resp.Status != 200 || resp.Header("content-type") != "text/plain" ||
			!strings.HasPrefix(body, "count="+itoa(want)+" hits="+itoa(want)+" req=") {
			t.Fatalf("resp %d = %+v %q", want, resp, body)
		}
		for _, s := range []string{`"method":"POST"`, `"url":"https://agent/run?x=1"`, `["X-A","b"]`, `"id":"w1"`, `"K":"V"`} {
			if !strings.Contains(body, s) {
				t.Fatalf("request JSON %q lacks %s", body, s)
			}
		}
	}
	if v, _, _ := h.StateGet("count"); string(v) != "2" {
		t.Fatalf("state count = %q, want 2", v)
	}
	if len(h.logs) == 0 || h.logs[0] != "info: count" {
		t.Fatalf("logs = %q", h.logs)
	}

	// Hibernate and wake: "hits" lives in linear memory, "count" in state.
	snap, err := w.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wasm snapshot: %d bytes", len(snap))
	w2, err := rt.RestoreWasm(ctx, spec, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(ctx)
	resp, err := w2.Fetch(ctx, Request{URL: "http://x/"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(resp.Body); !strings.HasPrefix(got, "count=3 hits=3 ") {
		t.Fatalf("after restore: %q", got)
	}
	if _, err := rt.RestoreWasm(ctx, spec, []byte("junk")); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("junk snapshot: %v", err)
	}
}

func TestWasmAgentPreempted(t *testing.T) {
	ctx := context.Background()
	w := newCounterWasm(t)
	start := time.Now()
	if err := w.Alarm(ctxTimeout(t, 50*time.Millisecond), newMemHost()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("alarm err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("preemption took %v", d)
	}
	if _, err := w.Fetch(ctx, Request{URL: "http://x/"}, newMemHost()); !errors.Is(err, ErrDead) {
		t.Fatalf("after timeout: %v, want ErrDead", err)
	}
}

func TestWasmRejectsNonABI(t *testing.T) {
	// A valid module without the ABI's exports: (module (memory (export "memory") 1))
	mod := []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01\x07\x0a\x01\x06memory\x02\x00")
	if _, err := testRuntime(t).NewWasm(context.Background(), WasmSpec{Module: mod}); err == nil || !strings.Contains(err.Error(), "ac_alloc") {
		t.Fatalf("err = %v", err)
	}
}

// TestWasmAgentLetsTheWorldStopClass: a raw wasm agent's endless loop (the
// counter's alarm) while another goroutine keeps asking for garbage
// collections. The module imports nothing the loop checks could call into
// Go, so only its runtime's exits at loop back-edges let a stop-the-world
// stop the goroutine (wasmRuntime); without them the process hangs and the
// test fails by the package's timeout.
func TestWasmAgentLetsTheWorldStopClass(t *testing.T) {
	w := newCounterWasm(t)
	done := make(chan error, 1)
	go func() { done <- w.Alarm(ctxTimeout(t, 100*time.Millisecond), newMemHost()) }()
	for {
		runtime.GC()
		select {
		case err := <-done:
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("alarm err = %v, want ErrTimeout", err)
			}
			return
		default:
		}
	}
}

// newCounterWasm is a live instance of the counter agent (its alarm loops
// forever), closed when the test ends.
func newCounterWasm(t *testing.T) *WasmIsolate {
	t.Helper()
	w, err := testRuntime(t).NewWasm(context.Background(), WasmSpec{Module: buildWAT(t, "counter")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}
