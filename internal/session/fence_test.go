package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// fencedJS writes its state by each of the commit paths: one key, several
// keys (the write-ahead record), a delete.
const fencedJS = `
let hits = 0;
export default {
  async fetch(request, env) {
    hits++;
    const p = new URL(request.url).pathname;
    const n = ((await env.state.get("n")) || 0) + 1;
    if (p === "/put") { await env.state.put("n", n); return Response.json({n, hits}); }
    if (p === "/two") { await env.state.put("n", n); await env.state.put("m", n); return Response.json({n, hits}); }
    if (p === "/del") { await env.state.delete("n"); return Response.json({n: 0, hits}); }
    return Response.json({n: n - 1, m: (await env.state.get("m")) || 0, hits});
  }
};`

type fencedReply struct{ N, M, Hits int }

// clusterMembers starts two managers on two members of a real
// three-member store cluster (replicated buckets), with ownership as each
// member's in-memory view says.
func clusterMembers(t *testing.T) (a, b *Manager, oa, ob *testOwner) {
	t.Helper()
	ss := storetest.OpenCluster(t, storetest.NewCA(t, "fence.test"), 3)
	start := func(st *store.Store, o *testOwner) *Manager {
		m, err := New(context.Background(), Config{Store: st, Runtime: testRuntime, JanitorInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background(), Bindings{Fetcher: newFetcher(t), Owner: o}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		return m
	}
	oa, ob = &testOwner{}, &testOwner{}
	return start(ss[0], oa), start(ss[1], ob), oa, ob
}

func fencedCall(t *testing.T, m *Manager, id, path string) (fencedReply, error) {
	t.Helper()
	status, body, err := call(t, m, "fenced", id, "GET", path, "")
	var r fencedReply
	if err == nil {
		if status != 200 {
			t.Fatalf("%s %s: %d %s", id, path, status, body)
		}
		_ = json.Unmarshal([]byte(body), &r)
	}
	return r, err
}

// TestStoreFencingClass: a member whose ownership another member took
// commits nothing, even while its own in-memory view still says it owns
// the session under its old epoch: the store refuses the write (the fence
// key moved), for every commit path (one key, several keys, a delete, a
// hibernated heap) and for activating the session again; what the new
// owner stored stays; under concurrent writes from both members every
// acknowledged increment is counted exactly once.
func TestStoreFencingClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member store cluster")
	}
	a, b, oa, ob := clusterMembers(t)
	deploy(t, a, `{"name":"fenced","entry":"agent.js","limits":{"idle_seconds":3600}}`, fencedJS)

	for i, path := range []string{"/put", "/two", "/del"} {
		id := fmt.Sprintf("s%d", i)
		epoch := uint64(10*i + 1)
		oa.set(true, epoch)
		ob.set(false, 0)
		if _, err := fencedCall(t, a, id, "/put"); err != nil {
			t.Fatalf("%s: owner: %v", path, err)
		}
		// b takes the session over; a is not told and still believes
		// it owns it under its epoch.
		ob.set(true, epoch+1)
		before, err := fencedCall(t, b, id, "/")
		if err != nil || before.N != 1 {
			t.Fatalf("%s: new owner reads %+v %v, want n=1", path, before, err)
		}
		_, err = fencedCall(t, a, id, path)
		wantNotOwner(t, path+": stale owner's commit", err)
		_, err = fencedCall(t, a, id, path)
		wantNotOwner(t, path+": stale owner's activation", err)
		after, err := fencedCall(t, b, id, "/")
		if err != nil || after.N != before.N || after.M != before.M {
			t.Fatalf("%s: the stale owner's write landed: %+v -> %+v %v", path, before, after, err)
		}
		if got, err := fencedCall(t, b, id, path); err != nil || path != "/del" && got.N != 2 {
			t.Fatalf("%s: new owner writes: %+v %v", path, got, err)
		}
	}
	if a.Stats().Live != 0 {
		t.Fatalf("the stale owner kept %d heaps live", a.Stats().Live)
	}

	// A hibernated heap: the stale owner's heap (2 hits) must not be
	// saved over the new owner's (1 hit).
	oa.set(true, 101)
	ob.set(false, 0)
	for range 2 {
		if _, err := fencedCall(t, a, "heap", "/put"); err != nil {
			t.Fatal(err)
		}
	}
	ob.set(true, 102)
	if r, err := fencedCall(t, b, "heap", "/put"); err != nil || r.Hits != 1 || r.N != 3 {
		t.Fatalf("new owner: %+v %v", r, err)
	}
	if err := b.Hibernate(context.Background(), "fenced", "heap"); err != nil {
		t.Fatal(err)
	}
	if err := a.Hibernate(context.Background(), "fenced", "heap"); err != nil {
		t.Fatalf("stale owner's hibernation: %v, want nothing saved and no error", err)
	}
	if r, err := fencedCall(t, b, "heap", "/"); err != nil || r.Hits != 2 || r.N != 3 {
		t.Fatalf("new owner restores %+v %v, want its own heap (hits 2, n 3)", r, err)
	}

	// Both members increment at once while b takes over from a.
	oa.set(true, 201)
	ob.set(false, 0)
	var okA, okB int
	var mu sync.Mutex
	var wg sync.WaitGroup
	tookOver := make(chan struct{})
	wg.Go(func() {
		for i := range 40 {
			if i == 5 {
				ob.set(true, 202)
				close(tookOver)
			}
			if _, err := fencedCall(t, a, "race", "/put"); err == nil {
				mu.Lock()
				okA++
				mu.Unlock()
			}
		}
	})
	wg.Go(func() {
		<-tookOver
		for range 40 {
			if _, err := fencedCall(t, b, "race", "/put"); err == nil {
				mu.Lock()
				okB++
				mu.Unlock()
			}
		}
	})
	wg.Wait()
	r, err := fencedCall(t, b, "race", "/")
	if err != nil || r.N != okA+okB {
		t.Fatalf("stored %d (%v), want %d acknowledged increments (%d on a, %d on b)", r.N, err, okA+okB, okA, okB)
	}
	if okA >= 40 || okB != 40 {
		t.Fatalf("a acknowledged %d of 40 after losing the session, b %d of 40", okA, okB)
	}
	t.Logf("race: a acknowledged %d, b %d; stored %d", okA, okB, r.N)
}
