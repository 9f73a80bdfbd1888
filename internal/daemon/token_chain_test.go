package daemon_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestTokenRevocationChainClass: a token minted with a token names it (and
// its chain); revoking any token of a chain refuses everything minted below
// it, by value or by id, on the very next request. Users revoke their own
// tokens and those minted from them, never another user's; a chain is
// bounded and a minted token never outlives the one it was minted with.
func TestTokenRevocationChainClass(t *testing.T) {
	cfg := config.Default()
	roomyAnonymousLimit(&cfg) // the race below spins with a revoked token
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	as := func(tok string) *client.Client {
		t.Helper()
		c, err := client.New("http://"+d.Addr(), tok)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	valid := func(name, tok string, want bool) {
		t.Helper()
		_, err := as(tok).WhoAmI(ctx)
		if want && err != nil {
			t.Errorf("%s: refused: %v", name, err)
		}
		if !want {
			wantKind(t, name, err, api.KindUnauthenticated, "revoked")
		}
	}
	mint := func(with *client.Client, subject, ttl string) *api.Token {
		t.Helper()
		tok, err := with.CreateToken(ctx, api.TokenRequest{Subject: subject, TTL: ttl})
		if err != nil {
			t.Fatalf("mint %s: %v", subject, err)
		}
		return tok
	}
	t1 := mint(admin, "user:alice", "1h")
	t2 := mint(as(t1.Token), "user:alice", "24h")
	t3 := mint(as(t2.Token), "user:alice", "")
	if len(t2.Chain) != 1 || t2.Chain[0] != t1.ID || len(t3.Chain) != 2 || t3.Chain[0] != t2.ID || t3.Chain[1] != t1.ID {
		t.Fatalf("chains: t2 %v t3 %v", t2.Chain, t3.Chain)
	}
	if t2.Expires.After(t1.Expires) || t3.Expires.After(t2.Expires) {
		t.Fatalf("a minted token outlives its parent: %s %s %s", t1.Expires, t2.Expires, t3.Expires)
	}
	bobTok := mint(admin, "user:bob", "1h")
	bob := as(bobTok.Token)
	aliceOther := mint(admin, "user:alice", "1h") // a second, unrelated token of alice

	// Bob cannot revoke alice's tokens, by value or by id; an unknown id
	// gets the same answer (no probing), a malformed one a 400.
	for name, req := range map[string]api.RevokeRequest{
		"bob revoking alice's token by value": {Token: t1.Token},
		"bob revoking alice's token by id":    {ID: t1.ID},
		"bob revoking a minted token by id":   {ID: t3.ID},
		"bob revoking an unknown id":          {ID: "no-such-token-id"},
	} {
		wantKind(t, name, bob.RevokeToken(ctx, req), api.KindForbidden, "may revoke only")
	}
	wantKind(t, "malformed id", bob.RevokeToken(ctx, api.RevokeRequest{ID: strings.Repeat("x", 200)}), api.KindInvalidID, "")
	wantKind(t, "id with bad characters", bob.RevokeToken(ctx, api.RevokeRequest{ID: "a b/c"}), api.KindInvalidID, "")
	wantKind(t, "forged token", bob.RevokeToken(ctx, api.RevokeRequest{Token: "e30.e30.sig"}), api.KindValidation, "")
	wantKind(t, "nothing named", bob.RevokeToken(ctx, api.RevokeRequest{}), api.KindValidation, "id")
	for name, tok := range map[string]string{"t1": t1.Token, "t2": t2.Token, "t3": t3.Token} {
		valid(name+" after bob's attempts", tok, true)
	}

	// Alice revokes her own: t2 by id (with another of her tokens) takes
	// t3 with it and leaves t1.
	if err := as(aliceOther.Token).RevokeToken(ctx, api.RevokeRequest{ID: t2.ID}); err != nil {
		t.Fatalf("alice revoking her own token by id: %v", err)
	}
	valid("t1 after revoking t2", t1.Token, true)
	valid("t2 after revoking t2", t2.Token, false)
	valid("t3 after revoking t2", t3.Token, false)

	// Revoking t1 refuses everything minted from it, including a token
	// minted a moment before, and leaves her unrelated token alone.
	t2b := mint(as(t1.Token), "user:alice", "")
	t3b := mint(as(t2b.Token), "user:alice", "")
	if err := as(t1.Token).RevokeToken(ctx, api.RevokeRequest{Token: t1.Token}); err != nil {
		t.Fatalf("alice revoking her own token by value: %v", err)
	}
	for name, tok := range map[string]string{"t1": t1.Token, "t2b": t2b.Token, "t3b": t3b.Token} {
		valid(name+" after revoking t1", tok, false)
	}
	valid("alice's unrelated token", aliceOther.Token, true)
	valid("bob's token", bobTok.Token, true)

	// Race: tokens minted from a token while it is being revoked are all
	// refused once the revocation has returned.
	root := mint(admin, "user:alice", "1h")
	var (
		mu     sync.Mutex
		minted []string
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		first  = make(chan struct{}, 3)
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := as(root.Token)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if tok, err := c.CreateToken(ctx, api.TokenRequest{Subject: "user:alice"}); err == nil {
					mu.Lock()
					minted = append(minted, tok.Token)
					mu.Unlock()
					select {
					case first <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	<-first // some mints went through before the revocation, more race it
	if err := as(root.Token).RevokeToken(ctx, api.RevokeRequest{ID: root.ID}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if len(minted) == 0 {
		t.Fatal("nothing was minted during the race")
	}
	for i, tok := range minted {
		valid("token minted during the revocation", tok, false)
		if i > 20 {
			break
		}
	}

	// The chain is bounded: past MaxChainDepth a token cannot mint.
	cur := mint(admin, "user:alice", "1h")
	for range 8 {
		cur = mint(as(cur.Token), "user:alice", "")
	}
	_, err := as(cur.Token).CreateToken(ctx, api.TokenRequest{Subject: "user:alice"})
	wantKind(t, "minting past the chain limit", err, api.KindForbidden, "chain too deep")

	// Denied revocations are audited.
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "token", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, ev := range evs.Events {
		if ev.Action == "token.revoke" && ev.Outcome == "deny" && ev.Principal == "spiffe://agentcloud.local/user/bob" {
			denied++
		}
	}
	if denied < 4 {
		t.Fatalf("%d denied revocations audited, want 4", denied)
	}
}
