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
