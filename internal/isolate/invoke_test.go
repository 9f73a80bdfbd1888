package isolate

import (
	"context"
	"encoding/json"
	"testing"
)

// TestInvokeServices drives env.tools, env.ai and env.sandbox through the
// one "invoke" host call: JSON in, JSON out, named errors.
func TestInvokeServices(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(request, env) {
		const out = {};
		out.tool = await env.tools.call("echo", {x: 1});
		out.search = await env.tools.search("files", {limit: 2});
		out.chat = await env.ai.chat({model: "m", messages: [{role: "user", content: "hi"}]});
		out.run = await env.sandbox.run({language: "python", code: "print(1)"});
		try { await env.tools.call("boom", {}); } catch (e) { out.err = e.name + "|" + e.message; }
		try { await env.tools.call("x", {f: () => 1, b: 1n}); } catch (e) { out.bad = e.name; }
		return Response.json(out);
	} }`)
	type call struct{ svc, method, args string }
	var calls []call
	h := newMemHost()
	h.invokeFn = func(ctx context.Context, svc, method string, args []byte) ([]byte, error) {
		calls = append(calls, call{svc, method, string(args)})
		var a struct{ Name string }
		_ = json.Unmarshal(args, &a)
		if a.Name == "boom" {
			return nil, &HostError{Name: "ToolError", Message: "boom failed"}
		}
		return []byte(`{"svc":"` + svc + `","method":"` + method + `"}`), nil
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(get(t, iso, h, "http://test/")), &out); err != nil {
		t.Fatal(err)
	}
	want := []call{
		{"tools", "call", `{"name":"echo","arguments":{"x":1}}`},
		{"tools", "search", `{"query":"files","limit":2}`},
		{"ai", "chat", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"sandbox", "run", `{"language":"python","code":"print(1)"}`},
		{"tools", "call", `{"name":"boom","arguments":{}}`},
	}
	if len(calls) != len(want) {
		t.Fatalf("calls = %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %v, want %v", i, calls[i], want[i])
		}
	}
	if got := out["err"]; got != "ToolError|boom failed" {
		t.Errorf("error = %v, want ToolError|boom failed", got)
	}
	if got := out["bad"]; got != "TypeError" {
		t.Errorf("non-JSON args error = %v, want TypeError", got)
	}
	if m, _ := out["run"].(map[string]any); m["svc"] != "sandbox" || m["method"] != "run" {
		t.Errorf("run result = %v", out["run"])
	}
}
