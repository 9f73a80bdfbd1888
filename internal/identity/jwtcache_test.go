package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestVerifiedTokenCacheClass: a token answered from the verified-token
// cache is refused exactly when a fresh verification would refuse it. Each
// case first verifies the token (so it is cached), then changes what the
// cache does not decide (time, audience, revocation of the token or of one
// it was minted with, the signing key leaving the bundle) and verifies
// again. Forgeries never enter the cache, and it stays bounded.
func TestVerifiedTokenCacheClass(t *testing.T) {
	ctx := context.Background()
	alice := spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice")
	type env struct {
		ca  *CA
		clk *fakeClock
	}
	mint := func(t *testing.T, e env, ttl time.Duration, chain ...string) (string, Token) {
		t.Helper()
		tok, _, err := e.ca.IssueJWT(alice, []string{"api", "other"}, ttl, chain...)
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.ca.VerifyJWT(ctx, tok, "api") // now cached
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := e.ca.verified.get(tok); !ok {
			t.Fatal("a verified token was not cached")
		}
		return tok, v
	}
	cases := []struct {
		name string
		// change returns the token to verify again, after changing the
		// world, and the audience to ask for.
		change func(t *testing.T, e env) (tok, aud string)
		want   error
	}{
		{"still valid", func(t *testing.T, e env) (string, string) {
			tok, _ := mint(t, e, time.Hour)
			return tok, "other"
		}, nil},
		{"expired since", func(t *testing.T, e env) (string, string) {
			tok, _ := mint(t, e, time.Minute)
			e.clk.Add(2 * time.Minute)
			return tok, "api"
		}, ErrExpiredToken},
		{"wrong audience", func(t *testing.T, e env) (string, string) {
			tok, _ := mint(t, e, time.Hour)
			return tok, "api2"
		}, ErrWrongAudience},
		{"revoked since", func(t *testing.T, e env) (string, string) {
			tok, v := mint(t, e, time.Hour)
			if err := e.ca.Revoker().Revoke(ctx, v.ID, v.Expiry); err != nil {
				t.Fatal(err)
			}
			return tok, "api"
		}, ErrRevokedToken},
		{"parent revoked since", func(t *testing.T, e env) (string, string) {
			_, parent := mint(t, e, time.Hour)
			lineage, err := parent.Lineage()
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := mint(t, e, time.Hour, lineage...)
			if err := e.ca.Revoker().Revoke(ctx, parent.ID, parent.Expiry); err != nil {
				t.Fatal(err)
			}
			return tok, "api"
		}, ErrRevokedToken},
		{"key left the bundle", func(t *testing.T, e env) (string, string) {
			tok, _ := mint(t, e, time.Hour)
			e.ca.JWTBundle().RemoveJWTAuthority(e.ca.jwtKID)
			return tok, "api"
		}, ErrForgedToken},
		{"key replaced in the bundle", func(t *testing.T, e env) (string, string) {
			tok, _ := mint(t, e, time.Hour)
			other := newTestCA(t, "", e.clk)
			if err := e.ca.JWTBundle().AddJWTAuthority(e.ca.jwtKID, other.jwtKey.Public()); err != nil {
				t.Fatal(err)
			}
			return tok, "api"
		}, ErrForgedToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			e := env{ca: newTestCA(t, "", clk), clk: clk}
			tok, aud := tc.change(t, e)
			for range 2 { // and again: a refusal is not cached as a success
				_, err := e.ca.VerifyJWT(ctx, tok, aud)
				if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
			}
		})
	}

	t.Run("forgeries are not cached", func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		ca, forger := newTestCA(t, "", clk), newTestCA(t, "", clk)
		good, _, _ := ca.IssueJWT(alice, []string{"api"}, time.Hour)
		forged, _, _ := forger.IssueJWT(alice, []string{"api"}, time.Hour)
		parts := strings.Split(good, ".")
		other, _, _ := ca.IssueJWT(spiffeid.RequireFromString("spiffe://agentcloud.local/admin/root"), []string{"api"}, time.Hour)
		tampered := parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2]
		for _, tok := range []string{forged, tampered, good + "x", "not.a.jwt", strings.Repeat("a", 10000)} {
			for range 2 {
				if _, err := ca.VerifyJWT(ctx, tok, "api"); err == nil {
					t.Fatalf("%.40s... verified", tok)
				}
			}
		}
		if n := ca.verified.len(); n != 0 {
			t.Fatalf("%d forgeries cached", n)
		}
	})

	t.Run("returned slices are copies", func(t *testing.T) {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		e := env{ca: newTestCA(t, "", clk), clk: clk}
		tok, v := mint(t, e, time.Hour)
		v.Audience[0] = "evil"
		if again, err := e.ca.VerifyJWT(ctx, tok, "api"); err != nil || again.Audience[0] != "api" {
			t.Fatalf("%+v %v", again, err)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		var c jwtCache
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range 3 * maxVerifiedJWTs {
			c.put(fmt.Sprintf("tok-%d", i), &signedJWT{expiry: now.Add(time.Hour)}, now)
			if c.len() > maxVerifiedJWTs {
				t.Fatalf("%d entries after %d puts", c.len(), i+1)
			}
		}
		c.put("expired", &signedJWT{expiry: now.Add(-time.Hour)}, now)
		c.put(strings.Repeat("x", maxCachedJWTBytes+1), &signedJWT{expiry: now.Add(time.Hour)}, now)
		if _, ok := c.get("expired"); ok {
			t.Fatal("an expired token was cached")
		}
		if _, ok := c.get(strings.Repeat("x", maxCachedJWTBytes+1)); ok {
			t.Fatal("an oversized token was cached")
		}
	})
}

// BenchmarkVerifyJWT is a token's verification the first time and then
// from the cache.
func BenchmarkVerifyJWT(b *testing.B) {
	ca, err := LoadOrCreateCA(Config{}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := ca.IssueJWT(spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice"), []string{"api"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			if _, err := ca.verifySignedJWT(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ca.VerifyJWT(ctx, tok, "api"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
