package daemon_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestDeployOwnershipRaceClass races two users deploying the same new agent
// (and a non-owner against the owner's redeploys), many rounds, through the
// real authorizer. Exactly one deploy of a new agent wins; the other gets
// 403 (or 409); and the agent's owner (the one user who may read it) is
// always the one whose code it runs.
func TestDeployOwnershipRaceClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	users := map[string]*client.Client{
		"alice": userClient(t, d, admin, "user:alice"),
		"bob":   userClient(t, d, admin, "user:bob"),
	}
	code := func(who string, round int) string {
		return fmt.Sprintf(`export default { fetch() { return new Response(%q) } } // %d`, who, round)
	}
	runs := func(agent string) string {
		t.Helper()
		resp, err := admin.Call(ctx, agent, "s", "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	owner := func(agent string) string {
		t.Helper()
		var owners []string
		for name, c := range users {
			if _, err := c.Agent(ctx, agent); err == nil {
				owners = append(owners, name)
			}
		}
		if len(owners) != 1 {
			t.Fatalf("%s: readable by %v, want exactly its owner", agent, owners)
		}
		return owners[0]
	}
	// Each round's two deploys overlap in their initialisation (tens of
	// milliseconds), so the old check-then-write lost the first round.
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		agent := fmt.Sprintf("invoicer-%d", round)
		man := `{"name":"` + agent + `","entry":"agent.js"}`
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := map[string]error{}
		var mu sync.Mutex
		for name, c := range users {
			wg.Go(func() {
				<-start
				err := deployJS(c, man, code(name, round))
				mu.Lock()
				errs[name] = err
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for name, err := range errs {
			switch {
			case err == nil:
				won++
			case api.IsKind(err, api.KindForbidden), api.IsKind(err, api.KindConflict):
			default:
				t.Fatalf("round %d: %s's deploy: %v, want success, 403 or 409", round, name, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d deploys of a new agent won (%v), want exactly one", round, won, errs)
		}
		o := owner(agent)
		if got := runs(agent); got != o {
			t.Fatalf("round %d: %s owns %s but it runs %s's code", round, o, agent, got)
		}
		if errs[o] != nil {
			t.Fatalf("round %d: %s owns %s but its deploy failed: %v", round, o, agent, errs[o])
		}
	}
	// An existing agent: its owner's redeploys race the other user's.
	agent := "invoicer-0"
	o := owner(agent)
	other := "alice"
	if o == "alice" {
		other = "bob"
	}
	man := `{"name":"` + agent + `","entry":"agent.js"}`
	for round := range max(rounds/2, 2) {
		var wg sync.WaitGroup
		var ownerErr, otherErr error
		wg.Go(func() { ownerErr = deployJS(users[o], man, code(o, 1000+round)) })
		wg.Go(func() { otherErr = deployJS(users[other], man, code(other, 1000+round)) })
		wg.Wait()
		if ownerErr != nil || !api.IsKind(otherErr, api.KindForbidden) {
			t.Fatalf("redeploy round %d: owner %v, other %v; want the owner to win and the other 403", round, ownerErr, otherErr)
		}
		if got := runs(agent); got != o {
			t.Fatalf("redeploy round %d: %s's agent runs %s's code", round, o, got)
		}
	}
}

// TestSessionBodyCapOverHTTP checks the session body limit through the
// daemon: a request body over it is a 413 problem, a response over it a
// 502 agent-response-too-large problem, on the traffic route and through
// the call_agent tool; the node keeps serving.
func TestSessionBodyCapOverHTTP(t *testing.T) {
	cfg := config.Default()
	cfg.SessionMaxBodyBytes = 256 << 10
	d, admin := startDaemonWith(t, cfg, nil)
	_ = d
	ctx := context.Background()
	if err := deployJS(admin, `{"name":"big","entry":"agent.js","limits":{"memory_mib":64}}`, `export default { async fetch(req) {
		const n = Number(new URL(req.url).searchParams.get("n") || 0);
		if (n) return new Response("A".repeat(n));
		return new Response(String((await req.arrayBuffer()).byteLength));
	} }`); err != nil {
		t.Fatal(err)
	}
	status := func(method, path string, body io.Reader) (int, string) {
		t.Helper()
		resp, err := admin.Call(ctx, "big", "s", method, path, body, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := status("POST", "/", strings.NewReader(strings.Repeat("x", 300<<10))); code != 413 || !strings.Contains(body, string(api.KindTooLarge)) {
		t.Errorf("request over the limit: %d %.200s", code, body)
	}
	if code, body := status("GET", "/?n=300000", nil); code != 502 || !strings.Contains(body, string(api.KindAgentResponseTooLarge)) {
		t.Errorf("response over the limit: %d %.200s", code, body)
	}
	if code, body := status("GET", "/?n=1000", nil); code != 200 || len(body) != 1000 {
		t.Errorf("response under the limit: %d %d bytes", code, len(body))
	}
	res, err := admin.CallTool(ctx, "call_agent", []byte(`{"agent":"big","session":"t","path":"/?n=300000"}`))
	if err == nil && !res.IsError {
		t.Errorf("call_agent of a response over the limit: %+v, want an error", res)
	}
}
