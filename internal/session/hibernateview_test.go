package session

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// TestHibernateSessionClass: the session HibernateSession answers with
// (the record its hibernation wrote, not read back) is exactly what the
// store then holds, for a new session, for one activated again and for one
// already hibernated; and it refuses what Hibernate refuses: a malformed
// id, an unknown session, another agent's name for the same id.
func TestHibernateSessionClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"hv","entry":"agent.js","limits":{"idle_seconds":86400}}`,
		`export default { async fetch(request, env) {
			if (request.method === "POST") { await env.state.put("k", {v: new URL(request.url).search}); }
			return new Response("ok");
		} };`)
	deploy(t, m, `{"name":"other","entry":"agent.js"}`, `export default { fetch() { return new Response("x") } };`)
	ctx := context.Background()
	same := func(step string, got api.Session) {
		t.Helper()
		want, err := m.Session(ctx, "hv", "a")
		if err != nil {
			t.Fatal(err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) {
			t.Fatalf("%s: HibernateSession answered\n%s\nthe store holds\n%s", step, g, w)
		}
		if got.State != "hibernated" || got.SnapshotBytes <= 0 {
			t.Fatalf("%s: state %q, snapshot %d bytes", step, got.State, got.SnapshotBytes)
		}
	}
	for step, method := range []string{"POST", "GET", "POST"} {
		if _, err := m.Call(ctx, "hv", "a", isolate.Request{Method: method, URL: "http://x/?n=" + method}); err != nil {
			t.Fatal(err)
		}
		got, err := m.HibernateSession(ctx, "hv", "a")
		if err != nil {
			t.Fatal(err)
		}
		same(method+" then hibernate #"+string(rune('0'+step)), got)
	}
	got, err := m.HibernateSession(ctx, "hv", "a") // hibernated already
	if err != nil {
		t.Fatal(err)
	}
	same("hibernated already", got)
	if _, err := m.HibernateSession(ctx, "hv", "nobody"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	if _, err := m.HibernateSession(ctx, "other", "a"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("another agent's session of the same id: %v", err)
	}
	for _, id := range []string{"..", "a/b", ""} {
		if _, err := m.HibernateSession(ctx, "hv", id); err == nil || api.IsKind(err, api.KindNotFound) {
			t.Fatalf("id %q: %v, want a refusal of the id", id, err)
		}
	}
}
