package session

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/store"
)

const keeperJS = `
let hits = 0;
export default {
  async fetch(request, env) {
    const p = new URL(request.url).pathname;
    hits++;
    if (p === "/alarm") await env.state.setAlarm(Date.now() + 60000);
    if (p === "/big") await env.state.put("big", "x".repeat(100000));
    const n = ((await env.state.get("n")) || 0) + 1;
    await env.state.put("n", n);
    console.log("hit", n);
    return Response.json({n, hits});
  },
  async alarm(env) { await env.state.put("fired", true); }
};`

// leftovers counts the store records of agent in every session bucket.
func leftovers(t *testing.T, m *Manager, agent string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, kv := range map[string]store.KV{"meta": m.meta, "state": m.state, "txns": m.txns, "snapshots": m.snapshots,
		"alarms": m.alarmKV, "versions": m.versions} {
		keys, err := kv.Keys(context.Background(), store.Key(agent))
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			out[name] = len(keys)
		}
	}
	return out
}

// TestAgentDeleteClass: deleting an agent removes it and every session of
// it — live, hibernated, with state, with an alarm — with its versions and
// log stream, from every read path (agent, listing, sessions, session,
// calls, logs), across a restart, and without touching another agent; a
// second delete is 404; a new agent of the same name starts empty; a
// deletion cut short is finished at the next start; bad names are 400.
func TestAgentDeleteClass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := openManager(t, dir)
	for _, name := range []string{"gone", "kept"} {
		deploy(t, m, `{"name":"`+name+`","entry":"agent.js","limits":{"cpu_ms":20000}}`, keeperJS)
		mustCall(t, m, name, "live", "/")
		mustCall(t, m, name, "alarmed", "/alarm")
		mustCall(t, m, name, "hib", "/big")
		if err := m.Hibernate(ctx, name, "hib"); err != nil {
			t.Fatal(err)
		}
	}
	if len(leftovers(t, m, "gone")) < 5 {
		t.Fatalf("setup wrote too little: %v", leftovers(t, m, "gone"))
	}
	if err := m.DeleteAgent(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	goneEverywhere := func(m *Manager) {
		t.Helper()
		if _, err := m.Agent(ctx, "gone"); !api.IsKind(err, api.KindNotFound) {
			t.Errorf("Agent: %v", err)
		}
		if _, err := m.Sessions(ctx, "gone"); !api.IsKind(err, api.KindNotFound) {
			t.Errorf("Sessions: %v", err)
		}
		for _, id := range []string{"live", "alarmed", "hib"} {
			if _, err := m.Session(ctx, "gone", id); !api.IsKind(err, api.KindNotFound) {
				t.Errorf("Session %s: %v", id, err)
			}
			if _, _, err := call(t, m, "gone", id, "GET", "/", ""); !api.IsKind(err, api.KindNotFound) {
				t.Errorf("call %s: %v", id, err)
			}
		}
		if _, _, err := m.Logs(ctx, "gone", "", 0, 10); !api.IsKind(err, api.KindNotFound) {
			t.Errorf("Logs: %v", err)
		}
		list, err := m.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list {
			if a.Name == "gone" {
				t.Error("still listed")
			}
		}
		if l := leftovers(t, m, "gone"); len(l) > 0 {
			t.Errorf("records left: %v", l)
		}
		if err := m.DeleteAgent(ctx, "gone"); !api.IsKind(err, api.KindNotFound) {
			t.Errorf("second delete: %v", err)
		}
		var got struct{ N int }
		_ = json.Unmarshal([]byte(mustCall(t, m, "kept", "hib", "/")), &got)
		if got.N < 2 {
			t.Errorf("kept lost its state: %+v", got)
		}
	}
	goneEverywhere(m)
	for _, bad := range []string{"", "Bad_Name", "a.b", "x/y"} {
		if err := m.DeleteAgent(ctx, bad); !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("DeleteAgent(%q): %v", bad, err)
		}
	}

	// After a restart it stays gone.
	_ = m.Close(ctx)
	_ = m.cfg.Store.Close()
	m = openManager(t, dir)
	goneEverywhere(m)

	// A new agent of the name starts empty.
	deploy(t, m, `{"name":"gone","entry":"agent.js","limits":{"cpu_ms":20000}}`, keeperJS)
	var got struct{ N, Hits int }
	_ = json.Unmarshal([]byte(mustCall(t, m, "gone", "hib", "/")), &got)
	if got.N != 1 || got.Hits != 1 {
		t.Fatalf("the new agent sees the old session: %+v", got)
	}

	// A deletion cut short (the record marked, the sessions still there)
	// is finished by the next start, before any request.
	mustCall(t, m, "gone", "other", "/alarm")
	e, err := m.agents.Get(ctx, store.Key("gone"))
	if err != nil {
		t.Fatal(err)
	}
	var ar agentRecord
	_ = json.Unmarshal(e.Value, &ar)
	ar.Deleting = true
	b, _ := json.Marshal(ar)
	if _, err := m.agents.Update(ctx, store.Key("gone"), b, e.Revision); err != nil {
		t.Fatal(err)
	}
	_ = m.Close(ctx)
	_ = m.cfg.Store.Close()
	m = openManager(t, dir)
	goneEverywhere(m)
}

// TestAgentDeleteDuringDeploy: while an agent is being deleted its name
// cannot be deployed (a conflict), and deploys of it work again after.
func TestAgentDeleteDuringDeploy(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, t.TempDir())
	deploy(t, m, `{"name":"race","entry":"agent.js"}`, keeperJS)
	e, _ := m.agents.Get(ctx, store.Key("race"))
	var ar agentRecord
	_ = json.Unmarshal(e.Value, &ar)
	ar.Deleting = true
	b, _ := json.Marshal(ar)
	if _, err := m.agents.Update(ctx, store.Key("race"), b, e.Revision); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := m.agentRecord(ctx, "race"); !ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	bd, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"race","entry":"agent.js"}`), "agent.js": []byte(keeperJS + "//2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deploy(ctx, Principal{}, bd); !api.IsKind(err, api.KindConflict) {
		t.Fatalf("deploy while deleting: %v", err)
	}
	if err := m.DeleteAgent(ctx, "race"); err != nil {
		t.Fatal(err)
	}
	deploy(t, m, `{"name":"race","entry":"agent.js"}`, keeperJS)
}
