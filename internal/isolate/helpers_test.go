package isolate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	sharedRT     *Runtime
	sharedRTOnce sync.Once
	sharedRTErr  error
)

// testRuntime returns one Runtime shared by the package's tests (compiling
// QuickJS is the expensive part), cached on disk under the OS temp dir.
func testRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	sharedRTOnce.Do(func() {
		sharedRT, sharedRTErr = NewRuntime(context.Background(), Config{
			CacheDir: filepath.Join(os.TempDir(), "agentcloud-isolate-test-cache"),
		})
	})
	if sharedRTErr != nil {
		tb.Fatal(sharedRTErr)
	}
	return sharedRT
}

// memHost is an in-memory Host, a test double of the session layer.
type memHost struct {
	mu      sync.Mutex
	state   map[string][]byte
	alarm   time.Time
	logs    []string
	fetchFn func(context.Context, Request) (Response, error)
	// invokeFn answers env.<service> calls; nil refuses them.
	invokeFn func(ctx context.Context, service, method string, args []byte) ([]byte, error)
	// caches and agent serve the Cache API (agent's entries of caches).
	caches *CacheStore
	agent  string
}

func newMemHost() *memHost {
	return &memHost{state: map[string][]byte{}, caches: NewCacheStore(0, 0, nil), agent: "a1"}
}

var _ CacheHost = (*memHost)(nil)

func (h *memHost) CacheMatch(cache, url string) (CachedResponse, bool, error) {
	r, ok := h.caches.Match(h.agent, cache, url)
	return r, ok, nil
}

func (h *memHost) CachePut(cache, url string, r CachedResponse) (bool, error) {
	return h.caches.Put(h.agent, cache, url, r)
}

func (h *memHost) CacheDelete(cache, url string) (bool, error) {
	return h.caches.Delete(h.agent, cache, url), nil
}

func (h *memHost) CacheEntryLimit() int64 { return h.caches.EntryLimit() }

func (h *memHost) StateGet(key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.state[key]
	return v, ok, nil
}

func (h *memHost) StatePut(key string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state[key] = append([]byte(nil), value...)
	return nil
}

func (h *memHost) StateDelete(key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.state, key)
	return nil
}

func (h *memHost) StateList(prefix string, limit int) ([]KV, error) {
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
	out := make([]KV, 0, len(keys))
	for _, k := range keys {
		out = append(out, KV{Key: k, Value: h.state[k]})
	}
	return out, nil
}

func (h *memHost) SetAlarm(at time.Time) error { h.alarm = at; return nil }
func (h *memHost) GetAlarm() (time.Time, bool, error) {
	return h.alarm, !h.alarm.IsZero(), nil
}
func (h *memHost) DeleteAlarm() error { h.alarm = time.Time{}; return nil }

func (h *memHost) Fetch(ctx context.Context, req Request) (Response, error) {
	if h.fetchFn == nil {
		return Response{}, errors.New("egress denied")
	}
	return h.fetchFn(ctx, req)
}

func (h *memHost) Invoke(ctx context.Context, service, method string, args []byte) ([]byte, error) {
	if h.invokeFn == nil {
		return nil, &HostError{Name: "NotSupportedError", Message: "env." + service + " is not available"}
	}
	return h.invokeFn(ctx, service, method, args)
}

func (h *memHost) Log(level, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, level+": "+msg)
}

// newIsolate makes an isolate from module source.
func newIsolate(tb testing.TB, module string) *Isolate {
	tb.Helper()
	iso, err := testRuntime(tb).New(context.Background(), Spec{SessionID: "s1", Agent: "a1", Module: module})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = iso.Close(context.Background()) })
	return iso
}

// get sends GET url and returns the body, failing on error.
func get(tb testing.TB, iso *Isolate, h Host, url string) string {
	tb.Helper()
	resp, err := iso.Fetch(ctxTimeout(tb, 5*time.Second), Request{Method: "GET", URL: url}, h)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	if resp.Status != 200 {
		tb.Fatalf("GET %s: status %d: %s", url, resp.Status, resp.Body)
	}
	return string(resp.Body)
}

func ctxTimeout(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// evalJS runs expr (a JS expression, may use await) in a fresh isolate's
// fetch handler and returns String(result).
func evalJS(tb testing.TB, expr string) string {
	tb.Helper()
	iso := newIsolate(tb, fmt.Sprintf(`export default { async fetch(request, env, ctx) {
		const result = await (async () => (%s))();
		return new Response(typeof result === "string" ? result : JSON.stringify(result));
	} }`, expr))
	return get(tb, iso, newMemHost(), "http://test/")
}

// benchTemplate returns the shared runtime, the spec of benchModule and
// its template.
func benchTemplate(tb testing.TB) (*Runtime, Spec, *Template) {
	tb.Helper()
	rt := testRuntime(tb)
	spec := Spec{Module: benchModule}
	tmpl, err := rt.Template(context.Background(), spec)
	if err != nil {
		tb.Fatal(err)
	}
	return rt, spec, tmpl
}

// benchIsolate is benchTemplate with an isolate restored from the
// template, closed when the test ends.
func benchIsolate(tb testing.TB) (*Runtime, Spec, *Template, *Isolate) {
	tb.Helper()
	rt, spec, tmpl := benchTemplate(tb)
	iso, err := rt.Restore(context.Background(), spec, nil, tmpl)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { iso.Close(context.Background()) })
	return rt, spec, tmpl, iso
}
