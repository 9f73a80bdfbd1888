package approval_test

import (
	"context"
	"errors"
	"testing"

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
