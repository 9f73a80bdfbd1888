package policy

import (
	"context"
	"strconv"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// TestDecideCachedClass: DecideCached answers as Decide does; a hit does
// not call build; applying a policy set empties the cache; a decision is
// not stored when a policy reads the request's extra context keys, when it
// had evaluation errors, or when the key names another action than the
// request; the cache is bounded.
func TestDecideCachedClass(t *testing.T) {
	ctx := context.Background()
	e := newPlainEngine(t)
	ents := testEntities()
	alice, bot := NewUID("User", "alice"), NewUID("Agent", "bot")
	req := Request{Principal: alice, Action: "agent.read", Resource: bot, Context: types.RecordMap{"rate": types.Long(1)}}
	key := CacheKey{Principal: "alice", Action: "agent.read", ResourceType: "Agent", ResourceID: "bot"}
	builds := 0
	build := func() (Entities, Request) { builds++; return ents, req }
	cached := func(k CacheKey) Decision {
		t.Helper()
		d, err := e.DecideCached(ctx, k, build)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	want, err := e.Decide(ctx, ents, req)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := cached(key); !sameDecision(got, want) {
			t.Fatalf("cached %+v, Decide %+v", got, want)
		}
	}
	if builds != 1 {
		t.Fatalf("%d builds for one key, want 1", builds)
	}
	apply := func(v uint64, src string) { // as Apply does, without the schema check
		t.Helper()
		user, err := parse("user.cedar", "user.", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := e.build(v, user)
		if err != nil {
			t.Fatal(err)
		}
		e.cur.Store(snap)
	}
	apply(1, `@id("no") forbid (principal == User::"alice", action == Action::"agent.read", resource);`)
	if got := cached(key); got.Allowed || builds != 2 {
		t.Fatalf("after a forbid: %+v (builds %d): the old cache answered", got, builds)
	}
	// A policy reads the rate: every request is decided anew.
	apply(2, `@id("rate") forbid (principal, action, resource) when { context has rate && context.rate > 5 };`)
	builds = 0
	for range 3 {
		cached(key)
	}
	if builds != 3 {
		t.Fatalf("%d builds with a policy reading context.rate, want 3", builds)
	}
	// Errors are not stored (an errored forbid is logged each time).
	apply(3, `@id("err") forbid (principal, action, resource) when { context.rate.nosuch == 1 };`)
	builds = 0
	for range 2 {
		if d := cached(key); d.Allowed || len(d.Errors) == 0 {
			t.Fatalf("errored forbid: %+v", d)
		}
	}
	if builds != 2 {
		t.Fatalf("%d builds of an errored decision, want 2", builds)
	}
	// A key for another action than the request's is not stored.
	apply(4, `@id("p") permit (principal, action, resource);`)
	builds = 0
	other := key
	other.Action = "agent.delete"
	cached(other)
	cached(other)
	if builds != 2 {
		t.Fatalf("%d builds for a key that names another action, want 2", builds)
	}
	// Bounded.
	req.Context = nil
	for i := range maxDecisionCache + 100 {
		k := key
		k.ResourceID = strconv.Itoa(i)
		cached(k)
	}
	if n := len(e.cur.Load().cache.m); n > maxDecisionCache {
		t.Fatalf("%d cached decisions, bound %d", n, maxDecisionCache)
	}
}
