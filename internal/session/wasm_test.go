package session

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
)

// buildCounterWasm builds examples/wasm-counter from its C source, skipping
// the test when clang cannot target wasm32-wasi here.
func buildCounterWasm(t *testing.T) []byte {
	t.Helper()
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang not found: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32 (scripts/deps.sh) to build examples/wasm-counter")
	}
	out := filepath.Join(t.TempDir(), "agent.wasm")
	if b, err := exec.Command("../../examples/wasm-counter/build.sh", out).CombinedOutput(); err != nil {
		if strings.Contains(string(b), "wasi") || strings.Contains(string(b), "wasm32") {
			t.Skipf("clang cannot target wasm32-wasi here (install wasi-libc, lld, libclang-rt-dev-wasm32): %s", b)
		}
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildWAT assembles testdata/name.wat, skipping without wat2wasm.
func buildWAT(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name+".wat"))
	if err != nil {
		t.Fatal(err)
	}
	return isolatetest.Assemble(t, src)
}

func deployWasm(t *testing.T, m *Manager, manifest string, module []byte) error {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest), "agent.wasm": module})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Deploy(context.Background(), Principal{}, b)
	return err
}

// TestWasmSessionSurvivesHibernationAndRestart runs the C example: its C
// global and its state counter continue across hibernation and a restart.
func TestWasmSessionSurvivesHibernationAndRestart(t *testing.T) {
	mod := buildCounterWasm(t)
	dir := t.TempDir()
	m := openManager(t, dir)
	manifest, err := os.ReadFile("../../examples/wasm-counter/agent.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := deployWasm(t, m, string(manifest), mod); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Global, Stored int
		Session        string
	}
	check := func(m *Manager, id string, global, stored int) {
		t.Helper()
		if err := json.Unmarshal([]byte(mustCall(t, m, "wasm-counter", id, "/")), &got); err != nil {
			t.Fatal(err)
		}
		if got.Global != global || got.Stored != stored || got.Session != id {
			t.Fatalf("%s: got %+v, want global %d stored %d", id, got, global, stored)
		}
	}
	check(m, "s1", 1, 1)
	check(m, "s1", 2, 2)
	if err := m.Hibernate(context.Background(), "wasm-counter", "s1"); err != nil {
		t.Fatal(err)
	}
	info, err := m.Session(context.Background(), "wasm-counter", "s1")
	if err != nil || info.State != "hibernated" || info.SnapshotBytes == 0 {
		t.Fatalf("after hibernate: %+v %v", info, err)
	}
	t.Logf("wasm session snapshot: %d bytes", info.SnapshotBytes)
	check(m, "s1", 3, 3)
	// A failed request commits nothing and answers a problem.
	if st, body, err := call(t, m, "wasm-counter", "s1", "PUT", "/", ""); err != nil || st != 405 {
		t.Fatalf("PUT: %d %q %v", st, body, err)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = m.cfg.Store.Close()
	m2 := openManager(t, dir)
	check(m2, "s1", 5, 4) // the 405 counted a hit in memory, not in state
	check(m2, "s2", 1, 1)
	if st, _, err := call(t, m2, "wasm-counter", "s1", "POST", "/reset", ""); err != nil || st != 200 {
		t.Fatalf("reset: %d %v", st, err)
	}
	check(m2, "s1", 7, 1)
}

func TestWasmLimitsContained(t *testing.T) {
	m := openManager(t, t.TempDir())
	mod := buildWAT(t, "limits")
	if err := deployWasm(t, m, `{"name":"lim","entry":"agent.wasm","runtime":"wasm","limits":{"memory_mib":4,"cpu_ms":200,"wall_ms":1000}}`, mod); err != nil {
		t.Fatal(err)
	}
	deploy(t, m, counterManifest, counterJS)
	for _, tc := range []struct {
		body string
		kind api.Kind
	}{
		{"L", api.KindSessionTimeout},
		{"B", api.KindSessionMemoryExceeded},
		{"T", api.KindSessionCrashed},
	} {
		_, _, err := call(t, m, "lim", "x", "POST", "/", tc.body)
		if !api.IsKind(err, tc.kind) {
			t.Errorf("%s: want %s, got %v", tc.body, tc.kind, err)
		}
		if st, body, err := call(t, m, "lim", "x", "GET", "/", ""); err != nil || st != 200 || body != "fine" {
			t.Errorf("after %s: %d %q %v", tc.body, st, body, err)
		}
		mustCall(t, m, "counter", "neighbour", "/")
	}
}

func TestWasmDeployErrors(t *testing.T) {
	m := openManager(t, t.TempDir())
	const man = `{"name":"w","entry":"agent.wasm","runtime":"wasm"}`
	for _, tc := range []struct {
		name   string
		module []byte
		want   string
	}{
		{"not wasm", []byte("export default {}"), "wasm magic"},
		{"truncated", []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01"), "does not load"},
		// A valid module without the ABI's exports: (module (memory (export "memory") 1))
		{"no ABI", []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01\x07\x0a\x01\x06memory\x02\x00"), "ac_alloc"},
	} {
		err := deployWasm(t, m, man, tc.module)
		if !api.IsKind(err, api.KindValidation) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want a validation problem mentioning %q, got %v", tc.name, tc.want, err)
		} else if p := api.AsProblem(err); p.Field != "entry" {
			t.Errorf("%s: field %q, want entry", tc.name, p.Field)
		}
	}
	if _, err := m.Agent(context.Background(), "w"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("a failed deploy left the agent deployed: %v", err)
	}
}

// TestIdleSessionsTrimmed checks that a session is trimmed after the request
// that activated it and again once quiet after later requests, and that
// a trimmed session keeps its globals, also through hibernation.
func TestIdleSessionsTrimmed(t *testing.T) {
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.TrimAfter = 100 * time.Millisecond })
	deploy(t, m, counterManifest, counterJS)
	waitTrims := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for m.Stats().Trims < n {
			if time.Now().After(deadline) {
				t.Fatalf("trims = %d, want %d", m.Stats().Trims, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var got struct{ Global, Stored int }
	_ = json.Unmarshal([]byte(mustCall(t, m, "counter", "t", "/")), &got)
	waitTrims(1) // after activation
	for i := 2; i <= 3; i++ {
		_ = json.Unmarshal([]byte(mustCall(t, m, "counter", "t", "/")), &got)
		if got.Global != i {
			t.Fatalf("call %d after trim: %+v", i, got)
		}
	}
	waitTrims(2) // quiet again
	if err := m.Hibernate(context.Background(), "counter", "t"); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(mustCall(t, m, "counter", "t", "/")), &got)
	if got.Global != 4 || got.Stored != 4 {
		t.Fatalf("after trim and hibernation: %+v", got)
	}
}

// assembleWAT builds WebAssembly text src (isolatetest.Assemble).
func assembleWAT(t *testing.T, src string) []byte { return isolatetest.Assemble(t, []byte(src)) }

// initWAT is a raw wasm agent answering "ok" whose _initialize runs
// initBody first; pages is its initial memory.
func initWAT(pages int, initBody string) string {
	return fmt.Sprintf(`(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") %d)
  (data (i32.const 16) "\00\10\00\00")
  (data (i32.const 64) "\0e\00\00\00{\"status\":200}ok")
  (func (export "_initialize") %s)
  (func (export "ac_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (i32.load (i32.const 16)))
    (i32.store (i32.const 16) (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))
  (func (export "ac_free") (param i32))
  (func (export "ac_fetch") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 20))))`, pages, initBody)
}
