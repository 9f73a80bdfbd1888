package session

import (
	"context"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
)

// recordingAuthz allows the owner (or anyone, for a new agent) and records
// what it was asked and which owner AgentInfo showed it.
type recordingAuthz struct {
	m    *Manager
	mu   sync.Mutex
	asks []string // principal ID|kind|agent|owner seen
}

func (a *recordingAuthz) AuthorizeDeploy(ctx context.Context, p Principal, agent string) error {
	info, ok, err := a.m.AgentInfo(ctx, agent)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.asks = append(a.asks, p.ID+"|"+p.Kind+"|"+agent+"|"+info.Owner)
	a.mu.Unlock()
	if ok && info.Owner != p.ID {
		return api.Errorf(api.KindForbidden, "%s does not own %s", p.ID, agent)
	}
	return nil
}

// TestDeployAuthorizerClass: Deploy records its explicit deployer as the
// first owner and keeps it; with a DeployAuthorizer it refuses a deploy
// without a principal, asks with the deployer and the agent, and the
// authorizer's AgentInfo sees the record being replaced; a refused deploy
// changes nothing.
func TestDeployAuthorizerClass(t *testing.T) {
	ctx := context.Background()
	b := func(name, text string) *bundle.Bundle {
		bb, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"` + name + `","entry":"agent.js"}`),
			"agent.js": []byte(`export default { fetch() { return new Response("` + text + `") } }`)})
		if err != nil {
			t.Fatal(err)
		}
		return bb
	}
	// Without an authorizer anyone deploys; the first deployer owns.
	open := openManager(t, t.TempDir())
	for _, who := range []string{"u1", "u2"} {
		if _, err := open.Deploy(ctx, Principal{ID: who, Kind: "user"}, b("free", who)); err != nil {
			t.Fatal(err)
		}
	}
	if info, _, _ := open.AgentInfo(ctx, "free"); info.Owner != "u1" {
		t.Fatalf("owner %q, want the first deployer u1", info.Owner)
	}

	authz := &recordingAuthz{}
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.DeployAuthorizer = authz })
	authz.m = m
	if _, err := m.Deploy(ctx, Principal{}, b("a", "x")); !api.IsKind(err, api.KindUnauthenticated) {
		t.Fatalf("deploy without a principal: %v", err)
	}
	if _, err := m.Deploy(ctx, Principal{ID: "alice", Kind: "user"}, b("a", "alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deploy(ctx, Principal{ID: "bob", Kind: "user"}, b("a", "bob")); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("bob over alice's agent: %v", err)
	}
	if body := mustCall(t, m, "a", "s", "/"); body != "alice" {
		t.Fatalf("agent runs %q after a refused deploy", body)
	}
	authz.mu.Lock()
	defer authz.mu.Unlock()
	want := []string{"alice|user|a|", "bob|user|a|alice"}
	if len(authz.asks) != len(want) || authz.asks[0] != want[0] || authz.asks[1] != want[1] {
		t.Fatalf("authorizer was asked %q, want %q", authz.asks, want)
	}
}
