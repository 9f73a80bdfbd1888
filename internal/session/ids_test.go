package session

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// badSessionIDs cannot name a session: they are not one SPIFFE path segment
// or break api.IDRules.
var badSessionIDs = []string{".", "..", "", "a/b", "../x", "a b", "\x00", "é", strings.Repeat("s", 129)}

// TestSessionIDClass sends ids that cannot form a SPIFFE path segment
// through every way a session is reached in this package: traffic (what
// the HTTP route, call_agent and env bindings call), an alarm coming due,
// the session routes' operations and the state tools. Each is a 400
// invalid-identifier problem naming the field, and nothing is created.
func TestSessionIDClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	deploy(t, m, counterManifest, counterJS)
	ctx := context.Background()
	for _, id := range badSessionIDs {
		ops := map[string]func() error{
			"call": func() error {
				_, err := m.Call(ctx, "counter", id, isolate.Request{Method: "GET", URL: "http://x/"})
				return err
			},
			"alarm":     func() error { return m.runAlarm(ctx, sessKey{"counter", id}, time.Now()) },
			"session":   func() error { _, err := m.Session(ctx, "counter", id); return err },
			"delete":    func() error { return m.Delete(ctx, "counter", id) },
			"hibernate": func() error { return m.Hibernate(ctx, "counter", id) },
			"state_get": func() error { _, _, err := m.StateGet(ctx, "counter", id, "k"); return err },
			"state_put": func() error { return m.StatePut(ctx, "counter", id, "k", json.RawMessage(`1`)) },
			"state_list": func() error {
				_, err := m.StateList(ctx, "counter", id, "", 0)
				return err
			},
		}
		for name, op := range ops {
			err := op()
			p := api.AsProblem(err)
			if err == nil || p.Kind() != api.KindInvalidID || p.Status != 400 || p.Field != "session" {
				t.Errorf("%s with session %q: %v, want a 400 invalid-identifier problem on field session", name, id, err)
			}
		}
	}
	// The agent name is checked the same way.
	if _, err := m.Call(ctx, "Counter", "s", isolate.Request{URL: "http://x/"}); !api.IsKind(err, api.KindInvalidID) || api.AsProblem(err).Field != "agent" {
		t.Errorf("call agent %q: %v, want invalid-identifier on field agent", "Counter", err)
	}
	// Nothing was created: no session records, state, live sessions.
	for _, kv := range []struct {
		name string
		keys func() ([]string, error)
	}{
		{"sessions", func() ([]string, error) { return m.meta.Keys(ctx, "") }},
		{"state", func() ([]string, error) { return m.state.Keys(ctx, "") }},
		{"alarms", func() ([]string, error) { return m.alarmKV.Keys(ctx, "") }},
	} {
		if keys, err := kv.keys(); err != nil || len(keys) != 0 {
			t.Errorf("%s bucket after refused ids: %q %v", kv.name, keys, err)
		}
	}
	if st := m.Stats(); st.Live != 0 {
		t.Errorf("live sessions after refused ids: %d", st.Live)
	}
	// A good id still works.
	mustCall(t, m, "counter", "a.b_c-1", "/")
}
