package approval_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/store"
)

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kv, err := st.KV(ctx, "approvals", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := approval.New(kv, nil)
	req := api.Approval{Principal: "p", Action: "egress.fetch", Resource: "Host::evil.test", Reason: "trifecta"}
	a, created, err := s.Request(ctx, req)
	if err != nil || !created || a.Status != approval.Pending {
		t.Fatalf("request: %+v %v %v", a, created, err)
	}
	if b, created, err := s.Request(ctx, req); err != nil || created || b.ID != a.ID {
		t.Fatalf("the same request must reuse the pending approval: %+v %v %v", b, created, err)
	}
	if _, ok, _ := s.Consume(ctx, "p", "egress.fetch", "Host::evil.test"); ok {
		t.Fatal("a pending approval was consumed")
	}
	if _, err := s.Resolve(ctx, "ap_missing", true, "admin"); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("resolve missing: %v", err)
	}
	r, err := s.Resolve(ctx, a.ID, true, "alice")
	if err != nil || r.Status != approval.Approved || r.ResolvedBy != "alice" {
		t.Fatalf("resolve: %+v %v", r, err)
	}
	if _, err := s.Resolve(ctx, a.ID, false, "bob"); !errors.Is(err, approval.ErrResolved) {
		t.Fatalf("resolving twice: %v", err)
	}
	if _, ok, _ := s.Consume(ctx, "p", "egress.fetch", "Host::other.test"); ok {
		t.Fatal("an approval was consumed by a different request")
	}
	if u, ok, err := s.Consume(ctx, "p", "egress.fetch", "Host::evil.test"); err != nil || !ok || u.ID != a.ID {
		t.Fatalf("consume: %+v %v %v", u, ok, err)
	}
	if _, ok, _ := s.Consume(ctx, "p", "egress.fetch", "Host::evil.test"); ok {
		t.Fatal("an approval was used twice")
	}
	list, err := s.List(ctx, approval.Used)
	if err != nil || len(list) != 1 {
		t.Fatalf("list used: %+v %v", list, err)
	}
}

// TestWaitEndsPendingClass: a wait whose time runs out — before, during or
// after its read of the approval — answers "still pending", never an error
// (on a loaded node the read itself may outlast a short wait); a wait for
// an approval that is resolved answers at once; a missing one is an error.
func TestWaitEndsPendingClass(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kv, err := st.KV(ctx, "approvals", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := approval.New(kv, nil)
	a, _, err := s.Request(ctx, api.Approval{Principal: "p", Action: "egress.fetch", Resource: "Host::evil.test", Reason: "trifecta"})
	if err != nil {
		t.Fatal(err)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := s.Wait(ended, a.ID); err != nil || got.Status != approval.Pending || got.ID != a.ID {
		t.Errorf("ended before the read: %+v %v", got, err)
	}
	short, cancel2 := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel2()
	if got, err := s.Wait(short, a.ID); err != nil || got.Status != approval.Pending {
		t.Errorf("a short wait: %+v %v", got, err)
	}
	if _, err := s.Wait(ctx, "ap_missing"); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("wait for a missing approval: %v", err)
	}
	if _, err := s.Resolve(ctx, a.ID, false, "alice"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Wait(ctx, a.ID); err != nil || got.Status != approval.Denied {
		t.Errorf("a resolved approval: %+v %v", got, err)
	}
}
