package session

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// faultyBlobs is the real blob store with a fault put in front of getting
// a template, the way a cluster's store behaves while a member restarts: slow to answer,
// or not answering. Puts are counted.
type faultyBlobs struct {
	store.Blobs
	delay time.Duration
	down  atomic.Bool
	puts  atomic.Int64
}

func (f *faultyBlobs) Get(ctx context.Context, name string) ([]byte, error) {
	if !strings.HasPrefix(name, "template-") {
		return f.Blobs.Get(ctx, name)
	}
	time.Sleep(f.delay)
	if f.down.Load() {
		return nil, fmt.Errorf("get blob: %w: no stream leader", store.ErrUnavailable)
	}
	return f.Blobs.Get(ctx, name)
}

func (f *faultyBlobs) Put(ctx context.Context, name string, data []byte) error {
	f.puts.Add(1)
	return f.Blobs.Put(ctx, name, data)
}

// TestStartTemplateFromSlowStore: a node that has not yet loaded a JS
// version's template gets it from the store on the first activation. A
// store slower to answer than the agent's limits.wall_ms (a cluster member
// restarting) delays that activation but does not fail it as agent code
// running past its limits; a store that cannot answer is a 503 to retry,
// and the stored template is not rebuilt over (other nodes' snapshots are
// deltas of it).
func TestStartTemplateFromSlowStore(t *testing.T) {
	dir := t.TempDir()
	const manifest = `{"name":"counter","entry":"agent.js","limits":{"cpu_ms":200,"wall_ms":200}}`
	m1 := openManager(t, dir)
	deploy(t, m1, manifest, counterJS)
	if got := mustCall(t, m1, "counter", "a", "/incr"); got != `{"n":1}` {
		t.Fatalf("first call: %s", got)
	}
	_ = m1.Close(context.Background())
	_ = m1.cfg.Store.Close()

	m := openManager(t, dir)
	f := &faultyBlobs{Blobs: m.bundles}
	m.bundles = f
	f.down.Store(true)
	_, _, err := call(t, m, "counter", "b", "GET", "/incr", "")
	if k := api.AsProblem(err).Kind(); k != api.KindUnavailable {
		t.Fatalf("store down: got %v (kind %s), want kind %s", err, k, api.KindUnavailable)
	}
	if n := f.puts.Load(); n != 0 {
		t.Fatalf("store down: the template was rebuilt and put %d times", n)
	}

	f.down.Store(false)
	f.delay = 400 * time.Millisecond // twice limits.wall_ms
	if got := mustCall(t, m, "counter", "a", "/incr"); got != `{"n":2}` {
		t.Fatalf("slow store: %s", got)
	}
	if n := f.puts.Load(); n != 0 {
		t.Fatalf("slow store: the template was rebuilt and put %d times", n)
	}
}
