package session

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// scriptedService answers every env.<name> call with the error its
// method names (a Service as the daemon's tools, ai and sandbox are).
type scriptedService map[string]error

func (s scriptedService) Invoke(_ context.Context, _ Caller, method string, _ []byte) ([]byte, error) {
	if err, ok := s[method]; ok {
		return nil, err
	}
	return []byte(`{"ok":true}`), nil
}

const envErrorJS = `
const cases = {
	toolType: (env) => env.tools.call("x", {}),
	toolNamed: (env) => env.tools.search("x"),
	toolWrapped: (env) => env.tools.list(),
	aiBudget: (env) => env.ai.chat({}),
	aiPlain: (env) => env.ai.embed({}),
	missing: (env) => env.sandbox.run({language: "python", code: "1"}),
	fetchDenied: () => fetch("http://denied.example/"),
	longKey: (env) => env.state.get("k".repeat(600)),
	bigValue: (env) => env.state.put("k", "x".repeat(1100000)),
};
export default { async fetch(request, env) {
	const which = new URL(request.url).pathname.slice(1);
	try { await cases[which](env); return new Response("no error"); }
	catch (e) { return Response.json({name: e.name, message: e.message, type: e instanceof TypeError, range: e instanceof RangeError}); }
} }`

// TestEnvBindingErrorClass: every env binding's failure reaches agent code
// as the Error class its producer chose: a service's *isolate.HostError
// (wrapped or not) keeps its name and message, a service missing on this
// node is a NotSupportedError, a refused fetch is a TypeError, and the
// session's own refusals (state keys and values over their limits) and a
// service's plain errors are plain Errors with their text.
func TestEnvBindingErrorClass(t *testing.T) {
	m := openManager(t, t.TempDir(), func(c *testConfig) {
		c.Services = map[string]Service{
			"tools": scriptedService{
				"call":   &isolate.HostError{Name: "TypeError", Message: "env.tools.call(name, args) needs a tool name"},
				"search": &isolate.HostError{Name: "RateLimitedError", Message: "slow down"},
				"list":   fmt.Errorf("toolbox: %w", &isolate.HostError{Name: "NotFoundError", Message: "no such tool"}),
			},
			"ai": scriptedService{
				"chat":  isolate.HostErrorf("BudgetExceededError", "agent %s is over its budget", "errs"),
				"embed": fmt.Errorf("ModelError: a plain error is not parsed"),
			},
		}
	})
	deploy(t, m, `{"name":"errs","entry":"agent.js","limits":{"memory_mib":64}}`, envErrorJS)
	cases := []struct {
		path, name, message string
		typeErr, rangeErr   bool
	}{
		{"toolType", "TypeError", "env.tools.call(name, args) needs a tool name", true, false},
		{"toolNamed", "RateLimitedError", "slow down", false, false},
		{"toolWrapped", "NotFoundError", "no such tool", false, false},
		{"aiBudget", "BudgetExceededError", "agent errs is over its budget", false, false},
		{"aiPlain", "Error", "ModelError: a plain error is not parsed", false, false},
		{"missing", "NotSupportedError", "env.sandbox is not available on this node", false, false},
		{"fetchDenied", "TypeError", "fetch failed: ", true, false},
		{"longKey", "Error", "invalid-identifier: key is 600 bytes long", false, false},
		{"bigValue", "Error", "state value for \"k\"", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			body := mustCall(t, m, "errs", "s1", "/"+tc.path)
			var got struct {
				Name, Message string
				Type, Range   bool
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%s: %s", tc.path, body)
			}
			if got.Name != tc.name || !strings.HasPrefix(got.Message, tc.message) || got.Type != tc.typeErr || got.Range != tc.rangeErr {
				t.Fatalf("%s threw %+v, want %s %q… (TypeError %v, RangeError %v)", tc.path, got, tc.name, tc.message, tc.typeErr, tc.rangeErr)
			}
		})
	}
}
