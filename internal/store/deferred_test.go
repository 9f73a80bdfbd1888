package store

import (
	"context"
	"errors"
	"testing"
)

// TestDeferredCreateClass: a Create made with a Deferred context is
// acknowledged without a round of its own, a later write's round fsyncs
// its stream too (so its Wait then costs nothing), a Wait alone runs the
// round itself, and a refused Create (existing key, another bucket's
// oversized value) leaves nothing registered and no write counted as
// sending. A nil Deferred and one without writes wait for nothing.
func TestDeferredCreateClass(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.KV(ctx, "drecs", KVOptions{MaxValueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	state, err := s.KV(ctx, "dstate", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Streams exist and have been synced once, so later counts are the
	// writes'.
	for _, kv := range []KV{recs, state} {
		if _, err := kv.Put(ctx, "warm", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	syncs := watchSyncs(s)
	recBlock := blocks(t, s, "KV_drecs")

	// The deferred create: no round, readable at once.
	var d Deferred
	r0 := s.SyncRounds()
	if _, err := recs.Create(WithDeferred(ctx, &d), "a", []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if s.SyncRounds() != r0 || syncs.total() != 0 {
		t.Fatalf("a deferred create ran %d rounds, %d fsyncs", s.SyncRounds()-r0, syncs.total())
	}
	if !d.Pending() {
		t.Fatal("a deferred create left nothing to wait for")
	}
	if e, err := recs.Get(ctx, "a"); err != nil || string(e.Value) != "rec" {
		t.Fatalf("get after deferred create: %v %q", err, e.Value)
	}
	// A second create of the key is refused as before.
	if _, err := recs.Create(ctx, "a", []byte("x")); !errors.Is(err, ErrExists) {
		t.Fatalf("create of a deferred-created key: %v", err)
	}
	// The state write's round syncs the record's block too.
	r0 = s.SyncRounds()
	if _, err := state.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if syncs.get(recBlock[len(recBlock)-1]) == 0 {
		t.Fatal("the round after a deferred create did not fsync its stream")
	}
	rounds := s.SyncRounds() - r0
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if s.SyncRounds()-r0 != rounds || d.Pending() {
		t.Fatalf("Wait after a covering round ran another (%d → %d rounds) or stayed pending", rounds, s.SyncRounds()-r0)
	}

	// Wait alone leads the round.
	before := syncs.get(recBlock[len(recBlock)-1])
	if _, err := recs.Create(WithDeferred(ctx, &d), "b", []byte("rec")); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	if syncs.get(recBlock[len(recBlock)-1]) == before {
		t.Fatal("Wait returned before the record's block was fsynced")
	}

	// Refused creates register nothing.
	var bad Deferred
	if _, err := recs.Create(WithDeferred(ctx, &bad), "b", []byte("again")); !errors.Is(err, ErrExists) {
		t.Fatalf("deferred create of an existing key: %v", err)
	}
	if _, err := recs.Create(WithDeferred(ctx, &bad), "big", make([]byte, 1024)); err == nil {
		t.Fatal("deferred create of an oversized value succeeded")
	}
	if bad.Pending() {
		t.Fatal("a refused deferred create left a wait")
	}
	if n := sendingOf(s); n != 0 {
		t.Fatalf("%d writes still count as sending", n)
	}
	var none *Deferred
	if err := none.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := bad.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestDeferredWithoutGroupCommit: without group commit (each write synced
// by the server) a deferred create registers nothing: it is durable when
// acknowledged.
func TestDeferredWithoutGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: t.TempDir(), SyncEachWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv, err := s.KV(ctx, "dsync", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var d Deferred
	if _, err := kv.Create(WithDeferred(ctx, &d), "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if d.Pending() {
		t.Fatal("a deferred create without group commit left a wait")
	}
}
