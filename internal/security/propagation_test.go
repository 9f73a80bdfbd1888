package security

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// propagationWait bounds how long a member may take to enforce a policy
// set applied on another (a watch delivering one replicated write).
const propagationWait = 15 * time.Second

// TestPolicyPropagationClass: the members of a cluster (three store
// members, a Security on each) enforce one policy set. A set applied on
// one member is enforced on the others; a newer one applied on a third
// replaces it everywhere; two members applying at once converge on one
// version; a stored set that does not load, and an older version written
// over a newer one, change nothing on any member.
func TestPolicyPropagationClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ctx := context.Background()
	ca := storetest.NewCA(t, "cluster.test")
	ss := storetest.OpenCluster(t, ca, 3)
	agents := agentTable{"bot": {Owner: alice, Manifest: bundle.Manifest{Name: "bot", Egress: []string{"api.example.com", "paste.example.net"}}}}
	members := make([]*Security, len(ss))
	for i, st := range ss {
		dir := t.TempDir()
		s, err := New(ctx, Config{TrustDomain: "agentcloud.local", CADir: dir + "/ca", DataDir: dir}, Deps{Store: st, Agents: agents})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(ctx) })
		members[i] = s
	}
	paste := reqAs(sessionCall(), "paste.example.net", 443)
	verdict := func(s *Security) egress.Verdict {
		d, err := s.DecideEgress(ctx, paste)
		if err != nil {
			t.Fatal(err)
		}
		return d.Verdict
	}
	// everywhere waits until every member enforces version v with verdict
	// want for the request.
	everywhere := func(what string, v uint64, want egress.Verdict) {
		t.Helper()
		deadline := time.Now().Add(propagationWait)
		for i, s := range members {
			for s.engine.Version() != v || verdict(s) != want {
				if time.Now().After(deadline) {
					t.Fatalf("%s: member %d enforces v%d (%v), want v%d (%v)", what, i, s.engine.Version(), verdict(s), v, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	everywhere("before any policy", 0, egress.Allow)

	forbid := `@id("no-paste") forbid (principal, action == Action::"egress.fetch", resource == Host::"paste.example.net");`
	ps, err := members[0].ApplyPolicies(ctx, forbid, "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	everywhere("applied on member 0", ps.Version, egress.Deny)

	ps, err = members[2].ApplyPolicies(ctx, `@id("nothing") forbid (principal, action == Action::"egress.fetch", resource == Host::"nowhere.test");`, "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	everywhere("replaced on member 2", ps.Version, egress.Allow)

	// Two members at once: one wins, the other is told to apply again,
	// and every member enforces the winner.
	var wg sync.WaitGroup
	applied := make([]api.PolicySet, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { applied[i], errs[i] = members[i].ApplyPolicies(ctx, forbid, "user:alice") })
	}
	wg.Wait()
	win := uint64(0)
	for i := range 2 {
		if errs[i] == nil {
			win = max(win, applied[i].Version)
		} else if !api.IsKind(errs[i], api.KindConflict) {
			t.Fatalf("member %d applying at the same time: %v", i, errs[i])
		}
	}
	if win == 0 {
		t.Fatal("neither of two concurrent applies won")
	}
	everywhere("applied by two at once", win, egress.Deny)

	// Hostile stored sets, written past ApplyPolicies: one that does not
	// parse, and an older version over the newer one.
	kv, err := ss[1].KV(ctx, "security", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var sampled sync.WaitGroup
	var seenMu sync.Mutex
	seen := map[uint64]bool{}
	sampled.Go(func() {
		for {
			for _, s := range members {
				seenMu.Lock()
				seen[s.engine.Version()] = true
				seenMu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	for _, bad := range []api.PolicySet{
		{Version: win + 1, Text: "forbid (principal, action, resource"},
		{Version: win + 2, Text: `permit (principal is NoSuchType, action, resource);`},
		{Version: 1, Text: `@id("old") forbid (principal, action, resource);`},
	} {
		b, _ := json.Marshal(bad)
		if _, err := kv.Put(ctx, policyCurrentKey, b); err != nil {
			t.Fatal(err)
		}
	}
	// Once a valid newer set follows, every member got past the bad ones
	// without installing any of them.
	good, _ := json.Marshal(api.PolicySet{Version: win + 3, Text: forbid})
	if _, err := kv.Put(ctx, policyCurrentKey, good); err != nil {
		t.Fatal(err)
	}
	everywhere("after hostile stored sets", win+3, egress.Deny)
	close(stop)
	sampled.Wait()
	for _, v := range []uint64{win + 1, win + 2, 1} {
		if v != win && seen[v] {
			t.Errorf("a member enforced the hostile stored set v%d", v)
		}
	}
}
