package session

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

const txnAgentJS = `
export default {
  async fetch(request, env) {
    if (request.method === "POST") { await env.state.put("a", 0); return new Response("ok"); }
    return Response.json([await env.state.get("a"), await env.state.get("b")]);
  }
};`

// TestPendingTxnSkipClass: an activation that skips the pending-commit
// read (one node, the keys listed at start) still finishes every commit
// that may be pending: one a crash left before the node started (listed),
// one this node's own commit left behind (marked), and a listed one
// removed meanwhile costs only a read. A session with none skips the read.
func TestPendingTxnSkipClass(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	m := openManager(t, dir)
	deploy(t, m, `{"name":"txn","entry":"agent.js"}`, txnAgentJS)
	for _, id := range []string{"crashed", "left", "clean"} {
		if _, _, err := call(t, m, "txn", id, "POST", "/", ""); err != nil {
			t.Fatal(err)
		}
		if err := m.Hibernate(ctx, "txn", id); err != nil {
			t.Fatal(err)
		}
	}
	// A crash between a commit's record and its cleanup: the record is
	// in the bucket when the node starts.
	if _, err := m.txns.Put(ctx, store.Key("txn", "crashed"), []byte(`{"puts":{"a":1,"b":2}}`)); err != nil {
		t.Fatal(err)
	}
	_ = m.Close(ctx)
	_ = m.cfg.Store.Close()

	m = openManager(t, dir)
	<-m.txnIdx.scanned
	if !m.txnIdx.known.Load() {
		t.Fatal("the pending commits were not listed at start")
	}
	if m.txnIdx.absent(store.Key("txn", "crashed")) {
		t.Fatal("a listed pending commit is taken for absent")
	}
	if body := mustCall(t, m, "txn", "crashed", "/"); body != "[1,2]" {
		t.Fatalf("after a crash mid-commit: %s, want the commit finished: [1,2]", body)
	}
	if !m.txnIdx.absent(store.Key("txn", "crashed")) {
		t.Fatal("a recovered commit is still marked")
	}
	// A commit of this node whose cleanup did not happen: marked before
	// its record was written.
	lkey := store.Key("txn", "left")
	m.txnIdx.mark(lkey)
	if _, err := m.txns.Put(ctx, lkey, []byte(`{"puts":{"a":3,"b":4}}`)); err != nil {
		t.Fatal(err)
	}
	if body := mustCall(t, m, "txn", "left", "/"); body != "[3,4]" {
		t.Fatalf("after a commit left pending: %s, want [3,4]", body)
	}
	// A session with none: no read, and its own writes as they were.
	if !m.txnIdx.absent(store.Key("txn", "clean")) {
		t.Fatal("a session without a pending commit is not known as such")
	}
	if body := mustCall(t, m, "txn", "clean", "/"); body != "[0,null]" {
		t.Fatalf("clean session: %s", body)
	}
	// Multi-key commits of this node leave no mark behind.
	deploy(t, m, `{"name":"multi","entry":"agent.js"}`, `
export default { async fetch(request, env) { await env.state.put("x", 1); await env.state.put("y", 2); return new Response("ok"); } };`)
	mustCall(t, m, "multi", "m", "/")
	if !m.txnIdx.absent(store.Key("multi", "m")) {
		t.Fatal("a finished multi-key commit left its mark")
	}
}

// TestTxnIndexClusterClass: with an Owner (a cluster, where another node's
// commit may be pending) nothing is ever taken for absent, listed or not;
// before the listing ends on one node, neither is anything.
func TestTxnIndexClusterClass(t *testing.T) {
	var wg sync.WaitGroup
	var x txnIndex
	x.start(context.Background(), true, func(context.Context) ([]string, error) { return nil, nil }, &wg, func(error) {})
	<-x.scanned
	x.mark("a.b")
	x.unmark("a.b")
	if x.absent("a.b") || x.absent("c.d") {
		t.Fatal("a cluster node skipped a pending-commit read")
	}
	release := make(chan struct{})
	var y txnIndex
	y.start(context.Background(), false, func(context.Context) ([]string, error) { <-release; return []string{"a.b"}, nil }, &wg, func(error) {})
	if y.absent("c.d") {
		t.Fatal("a key taken for absent before the listing ended")
	}
	close(release)
	<-y.scanned
	if y.absent("a.b") || !y.absent("c.d") {
		t.Fatal("the listing was not used")
	}
	wg.Wait()
}

// TestTxnSkipSharedStoreClass: a node whose store other processes can
// write (a NATS listener, an external NATS without a cluster: a second
// daemon in a rolling restart) never skips the pending-commit read. Here
// the other writer leaves a commit's record after this node's listing (it
// is killed between the record and its cleanup); this node must still
// apply it at activation.
func TestTxnSkipSharedStoreClass(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "js"), NoSync: true,
		Listen: "127.0.0.1:0", NKeySeedFile: filepath.Join(dir, "nkey.seed")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Exclusive() {
		t.Fatal("a store with a listener reports itself the only writer")
	}
	open := func() *Manager {
		t.Helper()
		m, err := New(ctx, Config{Store: st, Runtime: testRuntime, JanitorInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx, Bindings{Fetcher: newFetcher(t)}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	other := open()
	defer other.Close(ctx)
	deploy(t, other, `{"name":"txn","entry":"agent.js"}`, txnAgentJS)
	if _, _, err := call(t, other, "txn", "s", "POST", "/", ""); err != nil {
		t.Fatal(err)
	}
	if err := other.Hibernate(ctx, "txn", "s"); err != nil {
		t.Fatal(err)
	}
	m := open()
	defer m.Close(ctx)
	<-m.txnIdx.scanned
	other.txnIdx.mark(store.Key("txn", "s"))
	if _, err := other.txns.Put(ctx, store.Key("txn", "s"), []byte(`{"puts":{"a":1,"b":2}}`)); err != nil {
		t.Fatal(err)
	}
	if body := mustCall(t, m, "txn", "s", "/"); body != "[1,2]" {
		t.Fatalf("a commit another writer left pending after the listing: %s, want it applied: [1,2]", body)
	}
}
