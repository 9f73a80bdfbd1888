package session

import (
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// TestCPULimitStopsLoopClass: a CPU-bound handler is stopped at its cpu_ms
// (100 ms), not at its wall_ms (30 s), now that the call's CPU clock is
// read at the guest's yields rather than at arm: a JavaScript loop, a
// native loop of the engine's and a raw wasm agent's loop. Without the
// yields' check the wall limit stops them, with errWall, which fails the
// test (checked: with callHost.Yield emptied it fails so). The session and
// a neighbour keep answering.
func TestCPULimitStopsLoopClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"spin","entry":"agent.js","limits":{"cpu_ms":100,"wall_ms":30000}}`, `
export default {
  async fetch(request) {
    const p = new URL(request.url).pathname;
    if (p === "/loop") { for (;;) {} }
    if (p === "/native") { for (;;) new Array(1 << 20).join("x").length; }
    return new Response("fine");
  }
};`)
	deploy(t, m, counterManifest, counterJS)
	stopped := func(name string, do func() error) {
		t.Helper()
		if err := do(); !api.IsKind(err, api.KindSessionTimeout) || !strings.Contains(err.Error(), errCPU.Error()) {
			t.Errorf("%s: want a timeout for %q, got %v", name, errCPU, err)
		}
	}
	for _, p := range []string{"/loop", "/native"} {
		stopped(p, func() error { _, _, err := call(t, m, "spin", "x", "GET", p, ""); return err })
		if body := mustCall(t, m, "spin", "x", "/"); body != "fine" {
			t.Errorf("after %s: %q", p, body)
		}
		mustCall(t, m, "counter", "neighbour", "/")
	}

	mod := buildWAT(t, "limits")
	if err := deployWasm(t, m, `{"name":"wspin","entry":"agent.wasm","runtime":"wasm","limits":{"memory_mib":4,"cpu_ms":100,"wall_ms":30000}}`, mod); err != nil {
		t.Fatal(err)
	}
	stopped("wasm loop", func() error { _, _, err := call(t, m, "wspin", "x", "POST", "/", "L"); return err })
	if st, body, err := call(t, m, "wspin", "x", "GET", "/", ""); err != nil || st != 200 || body != "fine" {
		t.Errorf("after the wasm loop: %d %q %v", st, body, err)
	}
}

// TestCPULimitDescheduledClass: a call whose thread does not run for a
// while after its limits are armed (a loaded node's run queue, simulated by
// a sleep on the call's thread before the guest starts, four times the
// cpu_ms) is not stopped for CPU time it did not spend, and a CPU-bound
// handler under the same delay is still stopped at its cpu_ms, not at its
// wall_ms. Checked: with the first yield counting the wall time since arm
// as CPU (w11-warm2's yield) the light calls fail with errCPU.
func TestCPULimitDescheduledClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"slow","entry":"agent.js","limits":{"cpu_ms":50,"wall_ms":30000}}`, `
export default {
  async fetch(request) {
    const p = new URL(request.url).pathname;
    if (p === "/loop") { for (;;) {} }
    let x = 0;
    for (let i = 0; i < 100000; i++) x += i & 7;
    return new Response("done " + x);
  }
};`)
	mustCall(t, m, "slow", "x", "/") // the session is live: no activation under the hook
	testAfterArm = func() { time.Sleep(200 * time.Millisecond) }
	t.Cleanup(func() { testAfterArm = nil })
	for i := 0; i < 3; i++ {
		if st, body, err := call(t, m, "slow", "x", "GET", "/", ""); err != nil || st != 200 || !strings.HasPrefix(body, "done") {
			t.Fatalf("call %d after 200 ms off the CPU: %d %q %v", i, st, body, err)
		}
	}
	_, _, err := call(t, m, "slow", "x", "GET", "/loop", "")
	if !api.IsKind(err, api.KindSessionTimeout) || !strings.Contains(err.Error(), errCPU.Error()) {
		t.Fatalf("a CPU-bound call after 200 ms off the CPU: want %q, got %v", errCPU, err)
	}
}
