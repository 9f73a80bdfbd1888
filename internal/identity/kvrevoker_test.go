package identity

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

func openKV(t *testing.T) store.KV {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	kv, err := s.KV(ctx, "identity", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestKVRevoker(t *testing.T) {
	ctx := context.Background()
	kv := openKV(t)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := NewKVRevoker(kv, clk.Now)

	if err := r.Revoke(ctx, "", clk.Now()); err == nil {
		t.Fatal("empty jti accepted")
	}
	if ok, err := r.IsRevoked(ctx, "a.b/c"); err != nil || ok {
		t.Fatalf("fresh: %v %v", ok, err)
	}
	exp := clk.Now().Add(time.Minute)
	for _, jti := range []string{"a.b/c", "x"} {
		if err := r.Revoke(ctx, jti, exp); err != nil {
			t.Fatal(err)
		}
	}
	// A second revocation with an earlier expiry does not shorten it.
	if err := r.Revoke(ctx, "a.b/c", clk.Now()); err != nil {
		t.Fatal(err)
	}
	// A fresh revoker over the same bucket (another node, or a restart) sees it.
	r2 := NewKVRevoker(kv, clk.Now)
	for _, jti := range []string{"a.b/c", "x"} {
		if ok, err := r2.IsRevoked(ctx, jti); err != nil || !ok {
			t.Fatalf("%s: %v %v", jti, ok, err)
		}
	}
	if ok, _ := r2.IsRevoked(ctx, "a.b"); ok {
		t.Fatal("prefix of a revoked jti is revoked")
	}
	// Later revocation extends.
	if err := r.Revoke(ctx, "x", exp.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Still revoked within clock skew of expiry; gone after.
	clk.Add(time.Minute + clockSkew)
	if ok, _ := r.IsRevoked(ctx, "a.b/c"); !ok {
		t.Fatal("dropped before expiry+skew")
	}
	clk.Add(time.Second)
	if ok, _ := r.IsRevoked(ctx, "a.b/c"); ok {
		t.Fatal("kept after expiry")
	}
	if n, err := r.Prune(ctx); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v", n, err)
	}
	if _, err := kv.Get(ctx, revokedKey("a.b/c")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pruned entry: %v", err)
	}
	if ok, _ := r.IsRevoked(ctx, "x"); !ok {
		t.Fatal("extended entry lost")
	}
	// Revoking again after a prune works.
	if err := r.Revoke(ctx, "a.b/c", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.IsRevoked(ctx, "a.b/c"); !ok {
		t.Fatal("re-revoke lost")
	}
	// An unreadable entry fails closed and is pruned.
	if _, err := kv.Put(ctx, revokedKey("junk"), []byte("{")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.IsRevoked(ctx, "junk"); !ok {
		t.Fatal("unreadable entry not treated as revoked")
	}
	if n, _ := r.Prune(ctx); n != 1 {
		t.Fatalf("prune junk = %d", n)
	}
}

func TestKVRevokerWithCA(t *testing.T) {
	ctx := context.Background()
	kv := openKV(t)
	clk := &fakeClock{t: time.Now()}
	ca, err := LoadOrCreateCA(Config{Now: clk.Now, Revoker: NewKVRevoker(kv, clk.Now)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := NewID(ca.TrustDomain(), KindUser, "alice")
	tok, jti, err := ca.IssueJWT(alice, []string{"api"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ca.VerifyJWT(ctx, tok, "api")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Revoker().Revoke(ctx, jti, v.Expiry); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyJWT(ctx, tok, "api"); !errors.Is(err, ErrRevokedToken) {
		t.Fatalf("err = %v", err)
	}
}

// TestKVRevokerWatch checks the in-memory copy: it starts with the existing
// revocations, learns another node's revocation and pruning through the
// watch, sees its own at once, and falls back to the store when it ends.
func TestKVRevokerWatch(t *testing.T) {
	ctx := context.Background()
	kv := openKV(t)
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	other := NewKVRevoker(kv, clk.Now) // another node, not watching
	exp := clk.Now().Add(time.Minute)
	if err := other.Revoke(ctx, "before", exp); err != nil {
		t.Fatal(err)
	}
	r := NewKVRevoker(kv, clk.Now)
	wctx, stop := context.WithCancel(ctx)
	if err := r.Watch(wctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.IsRevoked(ctx, "before"); err != nil || !ok {
		t.Fatalf("existing revocation after Watch: %v %v", ok, err)
	}
	if err := r.Revoke(ctx, "mine", exp); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.IsRevoked(ctx, "mine"); !ok {
		t.Fatal("own revocation not seen at once")
	}
	if err := other.Revoke(ctx, "theirs", exp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "another node's revocation", func() bool { ok, _ := r.IsRevoked(ctx, "theirs"); return ok })
	clk.t = clk.t.Add(time.Hour)
	if ok, _ := r.IsRevoked(ctx, "theirs"); ok {
		t.Fatal("expired revocation still counts")
	}
	if n, err := other.Prune(ctx); err != nil || n != 3 {
		t.Fatalf("prune: %d %v", n, err)
	}
	waitFor(t, "pruned entries to leave memory", func() bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return len(r.revoked) == 0
	})
	stop()
	waitFor(t, "the copy to be dropped when the watch ends", func() bool {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return !r.live
	})
	if err := other.Revoke(ctx, "later", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.IsRevoked(ctx, "later"); err != nil || !ok {
		t.Fatalf("after the watch ended lookups must read the store: %v %v", ok, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
