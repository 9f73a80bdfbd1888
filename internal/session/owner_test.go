package session

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// testOwner is a cluster member's ownership as the session manager sees it:
// whether it owns every session and under which epoch. flipAt makes the
// flipAt-th Owns call from now on report the next epoch (ownership lost
// and retaken while a request runs).
type testOwner struct {
	mu     sync.Mutex
	ok     bool
	epoch  uint64
	calls  int
	flipAt int
}

func (o *testOwner) Owns(agent, id string) (uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	if o.flipAt > 0 && o.calls >= o.flipAt {
		o.epoch++
		o.flipAt = 0
	}
	return o.epoch, o.ok
}

func (o *testOwner) set(ok bool, epoch uint64) {
	o.mu.Lock()
	o.ok, o.epoch = ok, epoch
	o.mu.Unlock()
}

func (o *testOwner) flipAfter(n int) {
	o.mu.Lock()
	o.flipAt = o.calls + n
	o.mu.Unlock()
}

// twoMembers starts two managers on one store, as two members of a
// cluster share a replicated one.
func twoMembers(t *testing.T) (a, b *Manager, oa, ob *testOwner) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	start := func(o *testOwner) *Manager {
		m, err := New(context.Background(), Config{Store: st, Runtime: testRuntime, JanitorInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(context.Background(), Bindings{Fetcher: newFetcher(t), Owner: o}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		return m
	}
	oa, ob = &testOwner{ok: true, epoch: 1}, &testOwner{}
	return start(oa), start(ob), oa, ob
}

type counterReply struct{ Global, Stored int }

func counterCall(t *testing.T, m *Manager) (counterReply, error) {
	t.Helper()
	_, body, err := call(t, m, "counter", "s1", "GET", "/", "")
	var r counterReply
	if err == nil {
		_ = json.Unmarshal([]byte(body), &r)
	}
	return r, err
}

func wantReply(t *testing.T, what string, m *Manager, want counterReply) {
	t.Helper()
	got, err := counterCall(t, m)
	if err != nil || got != want {
		t.Fatalf("%s: got %+v %v, want %+v", what, got, err, want)
	}
}

func wantNotOwner(t *testing.T, what string, err error) {
	t.Helper()
	if !api.IsKind(err, api.KindUnavailable) || !errors.Is(err, errNotOwner) {
		t.Fatalf("%s: want 503 unavailable (not the owner), got %v", what, err)
	}
}

// TestSessionOwnershipClass: a session runs only on its owner. A non-owner
// refuses to activate it; a heap activated under one ownership epoch is
// never served or committed under another (failover, loss during a
// request); a stale heap is never saved over the owner's; a hand-off
// (HibernateWhere) moves the heap.
func TestSessionOwnershipClass(t *testing.T) {
	a, b, oa, ob := twoMembers(t)
	deploy(t, a, counterManifest, counterJS)
	wantReply(t, "owner", a, counterReply{1, 1})
	wantReply(t, "owner again", a, counterReply{2, 2})
	_, err := counterCall(t, b)
	wantNotOwner(t, "non-owner", err)
	if b.Stats().Live != 0 {
		t.Fatal("a non-owner activated the session")
	}

	// Failover: a stops owning without a hand-off, b takes over. a's
	// live heap is dropped; b starts from the stored state.
	oa.set(false, 1)
	ob.set(true, 2)
	_, err = counterCall(t, a)
	wantNotOwner(t, "old owner", err)
	if a.Stats().Live != 0 {
		t.Fatal("the old owner kept the stale heap live")
	}
	wantReply(t, "new owner after failover", b, counterReply{1, 3})

	// Ownership lost and retaken (a newer epoch) while a request runs:
	// nothing is committed, the heap is dropped, the next request starts
	// again from the store.
	ob.flipAfter(2) // acquire sees epoch 2, the commit epoch 3
	_, err = counterCall(t, b)
	wantNotOwner(t, "epoch changed during the request", err)
	wantReply(t, "after the fenced request", b, counterReply{1, 4})

	// Hand-off: b hibernates what it hands over, a restores that heap.
	if err := b.HibernateWhere(context.Background(), func(agent, id string) bool { return agent == "counter" }); err != nil {
		t.Fatal(err)
	}
	ob.set(false, 3)
	oa.set(true, 4)
	wantReply(t, "after hand-off", a, counterReply{2, 5})

	// Failover to b again (a not told): b restores the last snapshot.
	// a's stale heap must not be saved over it when a hibernates it.
	oa.set(false, 4)
	ob.set(true, 5)
	wantReply(t, "b after second failover", b, counterReply{2, 6})
	if err := a.Hibernate(context.Background(), "counter", "s1"); err != nil {
		t.Fatal(err)
	}
	ob.set(false, 5)
	oa.set(true, 6)
	// b never hibernated: a restores the snapshot of the hand-off (1
	// global hit then), not its own stale heap (2).
	wantReply(t, "a restores the owner's snapshot", a, counterReply{2, 7})
}

// TestAlarmFiresOnOwnerOnlyClass: an alarm scheduled on a node that does
// not own the session never fires there; the owner loads and fires it
// once.
func TestAlarmFiresOnOwnerOnlyClass(t *testing.T) {
	a, b, oa, ob := twoMembers(t)
	deploy(t, a, `{"name":"rem","entry":"agent.js"}`, `
export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/set") {
      await env.state.setAlarm(Date.now() + 300);
      return new Response("set");
    }
    return Response.json({fired: (await env.state.get("fired")) || 0});
  },
  async alarm(env) {
    await env.state.put("fired", ((await env.state.get("fired")) || 0) + 1);
  }
};`)
	if body := mustCall(t, a, "rem", "x", "/set"); body != "set" {
		t.Fatalf("set: %q", body)
	}
	// a hands the session to b before the alarm is due.
	if err := a.HibernateWhere(context.Background(), func(string, string) bool { return true }); err != nil {
		t.Fatal(err)
	}
	oa.set(false, 1)
	ob.set(true, 2)
	if err := b.LoadAlarms(context.Background(), func(agent, id string) bool { return agent == "rem" }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		body := mustCall(t, b, "rem", "x", "/")
		if body == `{"fired":1}` {
			break
		}
		if body != `{"fired":0}` || time.Now().After(deadline) {
			t.Fatalf("alarm on the owner: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// a scheduled the same alarm when it set it; it must not have run it.
	time.Sleep(500 * time.Millisecond)
	if body := mustCall(t, b, "rem", "x", "/"); body != `{"fired":1}` {
		t.Fatalf("alarm fired more than once: %s", body)
	}
}
