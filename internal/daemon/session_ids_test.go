package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestSessionIDDotSegmentClass sends the session ids "." and ".." (and
// their encoded and empty-segment forms) every way a session id reaches the
// daemon: raw HTTP to the traffic and session routes (no redirect
// followed), the Go client's Call and session methods, the call_agent
// tool, an env binding (agent code calling call_agent), and the state tools.
// Each is a 4xx problem and no session is created.
func TestSessionIDDotSegmentClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	if err := deployJS(admin, `{"name":"ids","entry":"agent.js","tools":["call_agent"]}`, `export default { async fetch(req, env) {
		const s = new URL(req.url).searchParams.get("s");
		if (s === null) return new Response("hi " + env.session.id);
		try { await env.tools.call("call_agent", {agent: "ids", session: s, path: "/"}); return new Response("called"); }
		catch (e) { return Response.json({name: e.name, message: e.message}, {status: 400}); }
	} }`); err != nil {
		t.Fatal(err)
	}
	tok := adminToken(t, d.DataDir())
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	raw := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, "http://"+d.Addr()+path, strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p api.Problem
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &p)
		return resp.StatusCode, p.Type
	}
	for _, seg := range []string{".", "..", "%2e", "%2E%2e", ""} {
		for _, r := range []struct{ method, path string }{
			{"POST", "/agents/ids/sessions/" + seg + "/x"},
			{"GET", "/agents/ids/sessions/" + seg},
			{"GET", "/v1/agents/ids/sessions/" + seg},
			{"DELETE", "/v1/agents/ids/sessions/" + seg},
			{"POST", "/v1/agents/ids/sessions/" + seg + "/hibernate"},
			{"GET", "/v1/agents/ids/sessions/" + seg + "/labels"},
		} {
			// A trailing empty id is no route (404); anything else is 400.
			want := 400
			if seg == "" && !strings.HasSuffix(r.path, "/x") && !strings.Contains(r.path, "//") {
				want = 404
			}
			if code, typ := raw(r.method, r.path); code != want || typ == "" {
				t.Errorf("%s %s: %d %q, want a %d problem", r.method, r.path, code, typ, want)
			}
		}
	}
	for _, id := range []string{".", ".."} {
		if resp, err := admin.Call(ctx, "ids", id, "POST", "/x", strings.NewReader("x"), nil); !api.IsKind(err, api.KindInvalidID) {
			if resp != nil {
				resp.Body.Close()
				t.Errorf("client Call(session %q): sent, status %d; want a local invalid-identifier error", id, resp.StatusCode)
			} else {
				t.Errorf("client Call(session %q): %v, want invalid-identifier", id, err)
			}
		}
		if err := admin.DeleteSession(ctx, "ids", id); !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("client DeleteSession(%q): %v, want invalid-identifier", id, err)
		}
		if _, err := admin.Session(ctx, "ids", id); !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("client Session(%q): %v, want invalid-identifier", id, err)
		}
		if _, err := admin.Hibernate(ctx, "ids", id); !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("client Hibernate(%q): %v, want invalid-identifier", id, err)
		}
		args, _ := json.Marshal(map[string]string{"agent": "ids", "session": id, "path": "/"})
		if res, err := admin.CallTool(ctx, "call_agent", args); err == nil && !res.IsError {
			t.Errorf("call_agent tool with session %q: %+v, want an error", id, res)
		}
		for _, tool := range []string{"state_get", "state_put"} {
			args, _ := json.Marshal(map[string]any{"agent": "ids", "session": id, "key": "k", "value": 1})
			if res, err := admin.CallTool(ctx, tool, args); err == nil && !res.IsError {
				t.Errorf("%s tool with session %q: %+v, want an error", tool, id, res)
			}
		}
		resp, err := admin.Call(ctx, "ids", "caller", "GET", "/?s="+id, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "session") {
			t.Errorf("env binding call_agent with session %q: %d %s, want the agent to catch an error naming the session", id, resp.StatusCode, b)
		}
	}
	// A path with dot segments would leave the session's URL.
	if _, err := admin.Call(ctx, "ids", "s", "GET", "/../../v1/agents", nil, nil); !api.IsKind(err, api.KindBadRequest) {
		t.Errorf("client Call with a dot-segment path: %v, want bad-request", err)
	}
	ss, err := admin.Sessions(ctx, "ids")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].ID != "caller" {
		t.Fatalf("sessions after refused ids: %+v, want only caller", ss)
	}
}
