// Package isolatetest holds the conformance suite every session instance
// must pass: a JavaScript isolate and a raw wasm module are driven through
// the same contract (Fetch, Alarm, Snapshot, Trim, MemoryBytes, Err, Close)
// running the same agent, the counter, written once in JavaScript
// (CounterJS) and once in WebAssembly text (counter.wat, built with
// wat2wasm). internal/session runs it against its JS and wasm instances.
// It also provides MemHost, an in-memory isolate.Host standing in for the
// session layer. It owns the contract's tests, not any implementation.
package isolatetest

import (
	"context"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// Instance is a live session's running agent code, as internal/session
// uses it.
type Instance interface {
	Fetch(ctx context.Context, req isolate.Request, h isolate.Host) (isolate.Response, error)
	Alarm(ctx context.Context, h isolate.Host) error
	Snapshot() ([]byte, error)
	Trim() error
	MemoryBytes() int
	Err() error
	Close(ctx context.Context) error
}

// CounterJS is counter.wat in JavaScript: each request increments "count"
// in session state and "hits" in the heap (which only snapshots keep),
// logs "count" at info, and answers "count=N hits=M req=<request JSON>" as
// text/plain; alarm never returns.
const CounterJS = `let hits = 0;
export default {
  async fetch(request, env) {
    const n = Number((await env.state.get("count")) ?? 0) + 1;
    await env.state.put("count", n);
    console.info("count");
    hits++;
    const req = JSON.stringify({method: request.method, url: request.url});
    return new Response("count=" + n + " hits=" + hits + " req=" + req, {headers: {"content-type": "text/plain"}});
  },
  async alarm() { for (;;) {} }
};`

//go:embed counter.wat
var counterWAT []byte

// CounterWasm assembles counter.wat (see Assemble).
func CounterWasm(t testing.TB) []byte { return Assemble(t, counterWAT) }

// Assemble converts WebAssembly text src with wat2wasm (and flags, e.g.
// --debug-names), skipping the test when the tool is missing (Debian:
// apt-get install wabt).
func Assemble(t testing.TB, src []byte, flags ...string) []byte {
	t.Helper()
	tool, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not found (apt-get install wabt)")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(tool, append(flags, in, "-o", out)...).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// MemHost is an in-memory isolate.Host: state, alarm and logs, no fetch
// and no platform services. Safe for concurrent use.
type MemHost struct {
	mu    sync.Mutex // protects the fields below
	state map[string][]byte
	alarm time.Time
	logs  []string
}

var _ isolate.Host = (*MemHost)(nil)

// NewMemHost returns an empty MemHost.
func NewMemHost() *MemHost { return &MemHost{state: map[string][]byte{}} }

// StateGet implements isolate.Host.
func (h *MemHost) StateGet(key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.state[key]
	return v, ok, nil
}

// StatePut implements isolate.Host.
func (h *MemHost) StatePut(key string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[key] = append([]byte(nil), value...)
	return nil
}

// StateDelete implements isolate.Host.
func (h *MemHost) StateDelete(key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.state, key)
	return nil
}

// StateList implements isolate.Host.
func (h *MemHost) StateList(prefix string, limit int) ([]isolate.KV, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var keys []string
	for k := range h.state {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]isolate.KV, 0, len(keys))
	for _, k := range keys {
		out = append(out, isolate.KV{Key: k, Value: h.state[k]})
	}
	return out, nil
}

// SetAlarm implements isolate.Host.
func (h *MemHost) SetAlarm(at time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.alarm = at
	return nil
}

// GetAlarm implements isolate.Host.
func (h *MemHost) GetAlarm() (time.Time, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.alarm, !h.alarm.IsZero(), nil
}

// DeleteAlarm implements isolate.Host.
func (h *MemHost) DeleteAlarm() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.alarm = time.Time{}
	return nil
}

// Fetch implements isolate.Host: every outbound request is refused.
func (h *MemHost) Fetch(context.Context, isolate.Request) (isolate.Response, error) {
	return isolate.Response{}, errEgress
}

// Invoke implements isolate.Host: no platform services.
func (h *MemHost) Invoke(_ context.Context, service, _ string, _ []byte) ([]byte, error) {
	return nil, notSupported(service)
}

// Log implements isolate.Host.
func (h *MemHost) Log(level, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, level+": "+msg)
}

// Logs returns what was logged, as "level: message".
func (h *MemHost) Logs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.logs...)
}

// WithRuntime runs run with a Runtime whose compile cache is a fresh
// temporary directory, then closes the runtime, removes the directory and
// returns run's exit code. It is the TestMain of packages whose tests
// share one runtime:
//
//	func TestMain(m *testing.M) {
//		os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int { testRuntime = rt; return m.Run() }))
//	}
func WithRuntime(run func(*isolate.Runtime) int) int {
	dir, err := os.MkdirTemp("", "isolate-cache-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	rt, err := isolate.NewRuntime(context.Background(), isolate.Config{CacheDir: dir})
	if err != nil {
		panic(err)
	}
	defer rt.Close(context.Background())
	return run(rt)
}
