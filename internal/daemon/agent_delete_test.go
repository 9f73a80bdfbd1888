package daemon_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
)

const statefulJS = `
export default { async fetch(request, env) {
  const n = ((await env.state.get("n")) || 0) + 1;
  await env.state.put("n", n);
  console.log("n", n);
  return Response.json({n});
} };`

// TestAgentDeleteRouteClass: DELETE /v1/agents/{agent} is Cedar-checked
// (agent.delete: the owner or an administrator; another tenant is refused
// and changes nothing), audited, removes the agent's sessions for good
// (also after a restart, also for a new agent of the same name), and
// answers 404 afterwards; malformed names are 4xx.
func TestAgentDeleteRouteClass(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	if err := deployJS(alice, `{"name":"doomed","entry":"agent.js"}`, statefulJS); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "a", "b"} {
		callOK(t, alice, "doomed", id, "/")
	}
	if err := bob.DeleteAgent(ctx, "doomed"); !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("bob deletes alice's agent: %v", err)
	}
	if ss, err := alice.Sessions(ctx, "doomed"); err != nil || len(ss) != 2 {
		t.Fatalf("after bob's attempt: %v %v", ss, err)
	}
	if err := alice.DeleteAgent(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	// The name has no owner any more: a user is refused as for any name
	// that is not theirs, an administrator learns it is not there.
	if _, err := alice.Agent(ctx, "doomed"); !api.IsKind(err, api.KindForbidden) {
		t.Errorf("agent after delete: %v", err)
	}
	if _, err := admin.Agent(ctx, "doomed"); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("agent after delete (admin): %v", err)
	}
	if err := admin.DeleteAgent(ctx, "doomed"); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if err := admin.DeleteAgent(ctx, "neverwas"); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("unknown agent: %v", err)
	}
	for _, path := range []string{"/v1/agents/Bad_Name", "/v1/agents/x.y", "/v1/agents/doomed?force=1"} {
		resp, err := admin.Raw(ctx, http.MethodDelete, path, nil, "")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			t.Errorf("%s: %d", path, resp.StatusCode)
		} else if p := api.AsProblem(err); p == nil || p.Status >= 500 {
			t.Errorf("%s: %v", path, err)
		}
	}
	audit, err := admin.Audit(ctx, client.AuditQuery{Type: "decision", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied bool
	for _, ev := range audit.Events {
		if ev.Action == "agent.delete" && ev.Resource == "Agent::doomed" {
			allowed = allowed || ev.Outcome == "allow"
			denied = denied || ev.Outcome == "deny"
		}
	}
	if !allowed || !denied {
		t.Errorf("audit: allowed %v, denied %v", allowed, denied)
	}

	// After a restart the sessions stay gone, also under a new agent of
	// the same name.
	stopDaemon(t, d)
	d, admin = startDaemonWith(t, cfg, nil)
	if _, err := admin.Sessions(ctx, "doomed"); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("sessions after restart: %v", err)
	}
	if err := deployJS(admin, `{"name":"doomed","entry":"agent.js"}`, statefulJS); err != nil {
		t.Fatal(err)
	}
	if ss, err := admin.Sessions(ctx, "doomed"); err != nil || len(ss) != 0 {
		t.Errorf("a new agent of the name has sessions: %v %v", ss, err)
	}
	resp, err := admin.Call(ctx, "doomed", "a", "GET", "/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"n":1}` {
		t.Errorf("session a of the new agent: %s", body)
	}
	_ = d
}
