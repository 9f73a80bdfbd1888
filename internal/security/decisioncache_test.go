package security

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/session"
)

// lockedAgents is an AgentDirectory a test may change while requests run.
type lockedAgents struct {
	mu sync.Mutex
	m  map[string]session.AgentInfo
}

func (a *lockedAgents) AgentInfo(_ context.Context, name string) (session.AgentInfo, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	info, ok := a.m[name]
	return info, ok, nil
}

func (a *lockedAgents) setOwner(name, owner string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[name] = session.AgentInfo{Owner: owner, Manifest: bundle.Manifest{Name: name}}
}

// TestDecisionCacheClass: decisions on sessions by callers that are not
// sessions are cached, and a cached decision is always the one the general
// path makes: for every caller kind, action and session (of an agent that
// exists or not), first and repeated; after the agent changes owner; after
// a policy set is applied (a forbid, and a rate limit that reads
// context.rate: the cache must not hide the rate); for two principals
// racing on the same session. Another tenant is never let in by a decision
// cached for the owner.
func TestDecisionCacheClass(t *testing.T) {
	ctx := context.Background()
	agents := &lockedAgents{m: map[string]session.AgentInfo{}}
	agents.setOwner("bot", alice)
	s := newSecurityAgents(t, agents)
	const bob = "spiffe://agentcloud.local/user/bob"
	callers := []string{alice, bob, adminID, "spiffe://agentcloud.local/agent/bot", "spiffe://agentcloud.local/node/n1"}
	actions := []string{session.ActionSessionCall, session.ActionSessionRead, session.ActionSessionDelete, "state.read"}
	sessions := []Resource{{Type: policy.TypeSession, Parent: "bot", ID: "s1"}, {Type: policy.TypeSession, Parent: "bot", ID: "s2"},
		{Type: policy.TypeSession, Parent: "ghost", ID: "s1"}}
	// check compares the cached path with the general one for every
	// question, twice (a miss, then a hit), and returns how many were
	// allowed for bob.
	check := func(stage string) (bobAllowed int) {
		t.Helper()
		for _, c := range callers {
			ip, err := s.principalOf(Principal{ID: c})
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range actions {
				for _, res := range sessions {
					want, _, err := s.decide(ctx, ip, a, res, &policy.Labels{}) // the general path
					if err != nil {
						t.Fatal(err)
					}
					for range 2 {
						got, uid, err := s.decide(ctx, ip, a, res, nil)
						if err != nil {
							t.Fatal(err)
						}
						if got.Allowed != want.Allowed || !slices.Equal(got.Reasons, want.Reasons) || got.Approvable != want.Approvable {
							t.Errorf("%s: %s %s %s: cached %+v, general %+v", stage, c, a, uidString(uid), got, want)
						}
						if c == bob && got.Allowed {
							bobAllowed++
						}
					}
				}
			}
		}
		return bobAllowed
	}
	if n := check("alice owns bot"); n != 0 {
		t.Fatalf("bob, another tenant, was allowed %d times on alice's sessions", n)
	}
	agents.setOwner("bot", bob)
	if n := check("bob owns bot"); n == 0 {
		t.Fatal("bob, now the owner, was never allowed")
	}
	agents.setOwner("bot", alice)
	if n := check("alice owns bot again"); n != 0 {
		t.Fatalf("a decision cached while bob owned bot let him in %d times", n)
	}
	if _, err := s.ApplyPolicies(ctx, `@id("no-alice-delete") forbid (principal == User::"alice", action == Action::"session.delete", resource);`, "admin"); err != nil {
		t.Fatal(err)
	}
	check("after a forbid")
	aliceP := Principal{ID: alice, Kind: "user"}
	s1 := Resource{Type: policy.TypeSession, Parent: "bot", ID: "s1"}
	if err := s.Authorize(ctx, aliceP, session.ActionSessionDelete, s1); api.AsProblem(err).Kind() != api.KindForbidden {
		t.Fatalf("forbid applied after a cached allow: %v", err)
	}
	// A rate limit reads context.rate: each request is decided with its
	// own rate, never from a decision cached at a lower one.
	if _, err := s.ApplyPolicies(ctx, `@id("rate") forbid (principal, action == Action::"session.call", resource) when { context has rate && context.rate > 40 };`, "admin"); err != nil {
		t.Fatal(err)
	}
	const dave = "spiffe://agentcloud.local/user/dave" // no requests yet this minute
	agents.setOwner("rbot", dave)
	var allowed, denied int
	for range 60 {
		if err := s.Authorize(ctx, Principal{ID: dave, Kind: "user"}, session.ActionSessionCall, Resource{Type: policy.TypeSession, Parent: "rbot", ID: "s1"}); err != nil {
			denied++
		} else {
			allowed++
		}
	}
	if allowed == 0 || denied == 0 {
		t.Fatalf("rate limit: %d allowed, %d denied; want both (a cached decision hid context.rate)", allowed, denied)
	}
	// Two principals racing on one session each get their own answer.
	if _, err := s.ApplyPolicies(ctx, `@id("p") permit (principal == User::"nobody", action, resource);`, "admin"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 200 {
		for _, who := range []string{alice, bob} {
			wg.Go(func() {
				err := s.Authorize(ctx, Principal{ID: who, Kind: "user"}, session.ActionSessionRead, Resource{Type: policy.TypeSession, Parent: "bot", ID: "s" + string(rune('a'+i%5))})
				if (who == alice) != (err == nil) {
					errs <- errors.New(who + ": wrong answer")
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
