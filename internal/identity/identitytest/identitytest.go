// Package identitytest holds the conformance suite every identity.Revoker
// must pass (the in-memory MemRevoker, and the KV-backed KVRevoker with and
// without its watched copy). Implementations call RevokerConformance from
// their own tests with a constructor of empty revokers on a test clock. It
// owns the contract's tests, not any implementation.
package identitytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
)

// Clock is a test clock; safe for concurrent use.
type Clock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

// NewClock returns a clock at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// NewRevoker returns an empty revoker reading time from now.
type NewRevoker func(t *testing.T, now func() time.Time) identity.Revoker

// skew is how long past a token's expiry a revocation must still hold:
// identity's clock skew allowance, which VerifyJWT also grants.
const skew = 30 * time.Second

// RevokerConformance runs the identity.Revoker contract against newRevoker:
// each clause on a fresh revoker and clock.
func RevokerConformance(t *testing.T, newRevoker NewRevoker) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, r identity.Revoker, clk *Clock)
	}{
		{"empty id", emptyID},
		{"revoke until expiry plus skew", untilExpiryPlusSkew},
		{"a later expiry wins", laterExpiryWins},
		{"ids are exact", idsAreExact},
		{"expired entries do not block a new revocation", expiredEntries},
		{"concurrent revocations", concurrent},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := NewClock()
			c.run(t, newRevoker(t, clk.Now), clk)
		})
	}
}

// revoked reports whether r holds jti revoked, failing t on an error.
func revoked(t *testing.T, r identity.Revoker, jti string) bool {
	t.Helper()
	ok, err := r.IsRevoked(context.Background(), jti)
	if err != nil {
		t.Fatalf("IsRevoked(%q): %v", jti, err)
	}
	return ok
}

// emptyID: an empty token id is refused and never revoked.
func emptyID(t *testing.T, r identity.Revoker, clk *Clock) {
	ctx := context.Background()
	if err := r.Revoke(ctx, "", clk.Now().Add(time.Hour)); err == nil {
		t.Error("Revoke of an empty token id accepted")
	}
	if revoked(t, r, "") {
		t.Error("the empty token id is revoked")
	}
}

// untilExpiryPlusSkew: a revocation holds until the token's expiry plus
// the clock skew, and not longer.
func untilExpiryPlusSkew(t *testing.T, r identity.Revoker, clk *Clock) {
	ctx := context.Background()
	if revoked(t, r, "t1") {
		t.Fatal("an unknown token is revoked")
	}
	if err := r.Revoke(ctx, "t1", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if !revoked(t, r, "t1") {
		t.Fatal("a revoked token is not revoked")
	}
	clk.Advance(time.Minute + skew - time.Second) // within the skew: still revoked
	if !revoked(t, r, "t1") {
		t.Fatal("revocation ended before the token's expiry plus clock skew")
	}
	clk.Advance(2 * time.Second) // the token itself is refused as expired now
	if revoked(t, r, "t1") {
		t.Fatal("revocation still held past the token's expiry plus clock skew")
	}
}

// laterExpiryWins: revoking again with an earlier expiry does not shorten a
// revocation; with a later one it extends it.
func laterExpiryWins(t *testing.T, r identity.Revoker, clk *Clock) {
	ctx := context.Background()
	for _, exp := range []time.Duration{time.Hour, time.Minute} { // the shorter second one does not shorten it
		if err := r.Revoke(ctx, "t2", clk.Now().Add(exp)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(10 * time.Minute)
	if !revoked(t, r, "t2") {
		t.Fatal("a second revocation with an earlier expiry shortened the first")
	}
	if err := r.Revoke(ctx, "t2", clk.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(90 * time.Minute)
	if !revoked(t, r, "t2") {
		t.Fatal("a revocation with a later expiry did not extend it")
	}
}

// idsAreExact: ids that look like key syntax or share prefixes stay
// distinct.
func idsAreExact(t *testing.T, r identity.Revoker, clk *Clock) {
	ctx := context.Background()
	// Ids that look like key syntax or share prefixes stay distinct.
	for _, jti := range []string{"a.b/c", "x*", ">", "ü"} {
		if err := r.Revoke(ctx, jti, clk.Now().Add(time.Hour)); err != nil {
			t.Fatalf("Revoke(%q): %v", jti, err)
		}
		if !revoked(t, r, jti) {
			t.Errorf("%q not revoked", jti)
		}
	}
	for _, other := range []string{"a", "a.b", "a.b/", "x", "xy", ">>", "u", "A.B/C"} {
		if revoked(t, r, other) {
			t.Errorf("%q revoked by a revocation of another id", other)
		}
	}
}

// expiredEntries: an expired entry does not block a new revocation of the
// same id.
func expiredEntries(t *testing.T, r identity.Revoker, clk *Clock) {
	ctx := context.Background()
	if err := r.Revoke(ctx, "t3", clk.Now()); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if revoked(t, r, "t3") {
		t.Fatal("expired entry still revoked")
	}
	if err := r.Revoke(ctx, "t3", clk.Now().Add(time.Minute)); err != nil || !revoked(t, r, "t3") {
		t.Fatalf("re-revoking an expired id: %v", err)
	}
}

// concurrent: revocations from several goroutines are all kept.
func concurrent(t *testing.T, r identity.Revoker, clk *Clock) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				jti := fmt.Sprintf("c%d-%d", w, i)
				if err := r.Revoke(ctx, jti, clk.Now().Add(time.Hour)); err != nil {
					t.Errorf("Revoke %s: %v", jti, err)
				}
				_, _ = r.IsRevoked(ctx, fmt.Sprintf("c%d-%d", (w+1)%8, i))
			}
		})
	}
	wg.Wait()
	for w := range 8 {
		for i := range 10 {
			if jti := fmt.Sprintf("c%d-%d", w, i); !revoked(t, r, jti) {
				t.Errorf("%s lost", jti)
			}
		}
	}
}
