package session

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// faultyBlobs is the real blob store with a fault put in front of getting
// a template, the way a cluster's store behaves while a member restarts:
// slow to answer, or not answering. Templates put are counted.
type faultyBlobs struct {
	store.Blobs
	delay atomic.Int64 // time.Duration
	down  atomic.Bool
	puts  atomic.Int64 // of templates
	// gate, when set before any call, holds every template get until it
	// is closed; each get sends on entered first.
	gate, entered chan struct{}
}

func (f *faultyBlobs) Get(ctx context.Context, name string) ([]byte, error) {
	if !strings.HasPrefix(name, "template-") {
		return f.Blobs.Get(ctx, name)
	}
	if f.gate != nil {
		select {
		case f.entered <- struct{}{}:
		default:
		}
		<-f.gate
	}
	time.Sleep(time.Duration(f.delay.Load()))
	if f.down.Load() {
		return nil, fmt.Errorf("get blob: %w: no stream leader", store.ErrUnavailable)
	}
	return f.Blobs.Get(ctx, name)
}

func (f *faultyBlobs) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "template-") {
		f.puts.Add(1)
	}
	return f.Blobs.Put(ctx, name, data)
}

// TestStartTemplateFromSlowStore: a node that has not yet loaded a JS
// version's template gets it from the store on the first activation. A
// store slower to answer than the agent's limits.wall_ms (a cluster member
// restarting) delays that activation but does not fail it as agent code
// running past its limits; a store that cannot answer is a 503 to retry,
// at activation and at deploy (not a 422 blaming the code), and the stored
// template is not rebuilt over (other nodes' snapshots are deltas of it).
func TestStartTemplateFromSlowStore(t *testing.T) {
	dir := t.TempDir()
	// wall_ms leaves the deploy's build and a restore room under -race on
	// a loaded machine; the slow store below is slower still.
	const wall = 1500 * time.Millisecond
	manifest := func(name string) string {
		return fmt.Sprintf(`{"name":%q,"entry":"agent.js","limits":{"cpu_ms":%d,"wall_ms":%[2]d}}`, name, wall.Milliseconds())
	}
	m1 := openManager(t, dir)
	deploy(t, m1, manifest("counter"), counterJS)
	if got := mustCall(t, m1, "counter", "a", "/incr"); got != `{"n":1}` {
		t.Fatalf("first call: %s", got)
	}
	_ = m1.Close(context.Background())
	_ = m1.cfg.Store.Close()

	m := openManager(t, dir)
	f := &faultyBlobs{Blobs: m.bundles}
	m.bundles = f // no background work of the manager reads bundles
	f.down.Store(true)
	unavailable := func(what string, err error) {
		t.Helper()
		p := api.AsProblem(err)
		if p.Kind() != api.KindUnavailable || p.RetryAfterSeconds <= 0 {
			t.Fatalf("%s with the store down: got %v (kind %s, retry after %d s), want kind %s with Retry-After",
				what, err, p.Kind(), p.RetryAfterSeconds, api.KindUnavailable)
		}
	}
	_, _, err := call(t, m, "counter", "b", "GET", "/incr", "")
	unavailable("activation", err)
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest("other")), "agent.js": []byte(counterJS)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Deploy(context.Background(), Principal{}, b)
	unavailable("deploy", err)
	if n := f.puts.Load(); n != 0 {
		t.Fatalf("store down: a template was rebuilt and put %d times", n)
	}

	f.down.Store(false)
	f.delay.Store(int64(wall + 500*time.Millisecond))
	if got := mustCall(t, m, "counter", "a", "/incr"); got != `{"n":2}` {
		t.Fatalf("slow store: %s", got)
	}
	if n := f.puts.Load(); n != 0 {
		t.Fatalf("slow store: the template was rebuilt and put %d times", n)
	}
}

// TestTemplateWaitEndsWithCallerContextClass: while one activation loads a
// version's template from a store that does not answer, another
// activation of the same version waits for it only as long as its own
// context lasts, and answers 503 to retry; it does not queue behind the
// stuck load. The first activation completes once the store answers.
func TestTemplateWaitEndsWithCallerContextClass(t *testing.T) {
	dir := t.TempDir()
	m1 := openManager(t, dir)
	deploy(t, m1, `{"name":"counter","entry":"agent.js"}`, counterJS)
	mustCall(t, m1, "counter", "a", "/incr")
	_ = m1.Close(context.Background())
	_ = m1.cfg.Store.Close()

	m := openManager(t, dir)
	f := &faultyBlobs{Blobs: m.bundles, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	m.bundles = f
	var opened atomic.Bool
	release := time.AfterFunc(30*time.Second, func() { opened.Store(true); close(f.gate) })
	t.Cleanup(func() { // before the manager's close, which waits for the first call
		if release.Stop() {
			close(f.gate)
		}
	})
	first := make(chan error, 1)
	go func() {
		_, _, err := call(t, m, "counter", "a", "GET", "/incr", "")
		first <- err
	}()
	select {
	case <-f.entered: // the first activation holds the version's template lock
	case err := <-first:
		t.Fatalf("the first activation did not load the template: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the first activation never loaded the template")
	}
	// Long enough for its own store reads on a loaded machine, so that
	// what ends it is the wait for the lock.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := m.Call(ctx, "counter", "b", isolate.Request{Method: "GET", URL: "http://agents.local/incr"})
	if opened.Load() {
		t.Fatalf("the second activation waited for the stuck load to end (%v)", err)
	}
	p := api.AsProblem(err)
	if p.Kind() != api.KindUnavailable || p.RetryAfterSeconds <= 0 || !strings.Contains(err.Error(), "still preparing") {
		t.Fatalf("second activation: %v (kind %s, retry after %d s), want a 503 for the template another activation is preparing",
			err, p.Kind(), p.RetryAfterSeconds)
	}
	if release.Stop() {
		close(f.gate)
	}
	if err := <-first; err != nil {
		t.Fatalf("first activation: %v", err)
	}
}
