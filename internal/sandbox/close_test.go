package sandbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// heldTier is a fakeTier whose creates wait in Prepare until release is
// closed; entered receives one token per create that reached Prepare.
type heldTier struct {
	fakeTier
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	boxes   []*fakeBox
}

func (t *heldTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	t.entered <- struct{}{}
	<-t.release
	pr, err := t.fakeTier.Prepare(ctx, tmpl)
	if err == nil {
		t.mu.Lock()
		t.boxes = append(t.boxes, pr.(*fakeBox))
		t.mu.Unlock()
	}
	return pr, err
}

// TestManagerCloseWaitsForCreatesClass: a create, start or fork under way
// when the Manager closes used to register its live sandbox after Close had
// taken the list, so nothing ever closed it (its processes, cgroups and
// mounts outlived the daemon's shutdown). Close now waits for them and
// closes what they made; an operation begun after Close is refused as
// unavailable.
func TestManagerCloseWaitsForCreatesClass(t *testing.T) {
	tier := &heldTier{entered: make(chan struct{}, 4), release: make(chan struct{})}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, ReapInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	created := make(chan error, 1)
	go func() {
		_, err := m.Create(ctx, "inflight", sandbox.Spec{Tier: "fake"})
		created <- err
	}()
	<-tier.entered // the create is in Prepare
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	// Close must not return while the create is under way.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a create under way", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := m.Create(ctx, "late", sandbox.Spec{Tier: "fake"}); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("create after Close began: %v, want ErrUnavailable", err)
	}
	if _, err := m.StartSandbox(ctx, "inflight"); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("start after Close began: %v, want ErrUnavailable", err)
	}
	if _, err := m.Fork(ctx, "inflight", 1); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("fork after Close began: %v, want ErrUnavailable", err)
	}
	close(tier.release)
	if err := <-created; err != nil {
		t.Fatalf("the create under way: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	tier.mu.Lock()
	defer tier.mu.Unlock()
	if len(tier.boxes) != 1 {
		t.Fatalf("%d sandboxes prepared, want 1", len(tier.boxes))
	}
	if !tier.boxes[0].closed.Load() {
		t.Fatal("the sandbox created while the Manager closed was never closed")
	}
}
