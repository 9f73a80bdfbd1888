package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// loopAfter is an _initialize body that loops forever once the wall clock
// passes unixNanos, and returns before.
func loopAfter(unixNanos int64) string {
	return fmt.Sprintf(`(drop (call $clock (i32.const 0) (i64.const 1) (i32.const 0)))
    (if (i64.gt_u (i64.load (i32.const 0)) (i64.const %d)) (then (loop $l (br $l))))`, unixNanos)
}

// TestAgentInitLimitClass checks that agent initialisation runs under the
// manifest's wall time (capped by the node's InitTimeout) on every path
// that runs it: deploy (JS module top level: a loop, a timer, a memory
// bomb; wasm _initialize; a wasm module larger than its memory limit), a
// template rebuilt at activation, a wasm session's _initialize at
// activation, and a restore that reaches agent code. Deploy answers a 422
// problem naming the limit and keeps the previous version current;
// activation answers session-timeout naming it.
func TestAgentInitLimitClass(t *testing.T) {
	// Limits leave room for a slow machine (-race, other load): only the
	// runaway cases may run into them.
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.InitTimeout = 5 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	good := deploy(t, m, `{"name":"init","entry":"agent.js"}`, `export default { fetch() { return new Response("v1") } }`)
	for _, tc := range []struct {
		name, limits, code string
		kind               api.Kind
		field, detail      string
	}{
		{"loop", `{"cpu_ms":100,"wall_ms":300}`, `for (;;) {}`, api.KindAgentInitTimeout, "limits.wall_ms", "300 ms"},
		{"timer", `{"cpu_ms":100,"wall_ms":300}`, `await new Promise(r => setTimeout(r, 60000));`, api.KindAgentInitTimeout, "limits.wall_ms", "300 ms"},
		{"node cap", `{}`, `for (;;) {}`, api.KindAgentInitTimeout, "", "agent_init_timeout"},
		{"memory", `{"memory_mib":8,"cpu_ms":20000,"wall_ms":20000}`, `const a = []; for (;;) a.push(new Array(100000).fill(1));`, api.KindValidation, "limits.memory_mib", "8 MiB"},
	} {
		b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"init","entry":"agent.js","limits":` + tc.limits + `}`),
			"agent.js": []byte(tc.code + "\nexport default { fetch() { return new Response(\"v2\") } }")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Deploy(ctx, Principal{}, b)
		p := api.AsProblem(err)
		if err == nil || p.Kind() != tc.kind || p.Status != 422 || p.Field != tc.field || !strings.Contains(p.Detail, tc.detail) {
			t.Errorf("%s: %v (field %q), want a 422 %s naming %q %q", tc.name, err, p.Field, tc.kind, tc.field, tc.detail)
		}
		if a, err := m.Agent(ctx, "init"); err != nil || a.Current != good.Digest {
			t.Errorf("%s: current version %v %v, want the previous one", tc.name, a.Current, err)
		}
		if body := mustCall(t, m, "init", "s", "/"); body != "v1" {
			t.Errorf("%s: the session answers %q, want v1", tc.name, body)
		}
	}

	wasmGood := assembleWAT(t, initWAT(1, ""))
	if err := deployWasm(t, m, `{"name":"winit","entry":"agent.wasm","runtime":"wasm"}`, wasmGood); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, limits string
		module       []byte
		kind         api.Kind
		field        string
	}{
		{"wasm _initialize loop", `{"cpu_ms":100,"wall_ms":300}`, assembleWAT(t, initWAT(1, `(loop $l (br $l))`)), api.KindAgentInitTimeout, "limits.wall_ms"},
		{"wasm memory above limit", `{"memory_mib":1}`, assembleWAT(t, initWAT(17, "")), api.KindValidation, "limits.memory_mib"},
	} {
		err := deployWasm(t, m, `{"name":"winit","entry":"agent.wasm","runtime":"wasm","limits":`+tc.limits+`}`, tc.module)
		if p := api.AsProblem(err); err == nil || p.Kind() != tc.kind || p.Status != 422 || p.Field != tc.field {
			t.Errorf("%s: %v (field %q), want a 422 %s on %q", tc.name, err, p.Field, tc.kind, tc.field)
		}
		if body := mustCall(t, m, "winit", "s", "/"); body != "ok" {
			t.Errorf("%s: the previous wasm version answers %q", tc.name, body)
		}
	}

	// Activation: code that starts looping at init once a deadline passes,
	// so deploy succeeds and a later initialisation does not.
	at := time.Now().Add(8 * time.Second)
	v := deploy(t, m, `{"name":"later","entry":"agent.js","limits":{"cpu_ms":100,"wall_ms":2000}}`,
		fmt.Sprintf(`if (Date.now() > %d) for (;;) {}
export default { fetch() { return new Response("ok") } }`, at.UnixMilli()))
	if err := deployWasm(t, m, `{"name":"wlater","entry":"agent.wasm","runtime":"wasm","limits":{"cpu_ms":100,"wall_ms":2000}}`,
		assembleWAT(t, initWAT(1, loopAfter(at.UnixNano())))); err != nil {
		t.Fatal(err)
	}
	deploy(t, m, `{"name":"setter","entry":"agent.js","env":{"MODE":"x"},"limits":{"cpu_ms":1000,"wall_ms":2000,"idle_seconds":3600}}`,
		`export default { fetch(req, env) {
  Object.defineProperty(env, "MODE", { configurable: true, get() { return "x" }, set(v) { for (;;) {} } });
  return new Response("armed");
} }`)
	mustCall(t, m, "setter", "s", "/")
	if err := m.Hibernate(ctx, "setter", "s"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(at) + 50*time.Millisecond)
	// The stored template is gone (as after an engine upgrade), so the
	// next activation rebuilds it.
	if err := m.bundles.Delete(ctx, "template-"+v.Digest); err != nil {
		t.Fatal(err)
	}
	m.vmu.Lock()
	delete(m.vcache, v.Digest)
	m.vmu.Unlock()
	for _, s := range []struct{ agent, what string }{
		{"later", "template rebuilt at activation"},
		{"wlater", "wasm _initialize at activation"},
		{"setter", "restore reaching agent code"},
	} {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := m.Call(cctx, s.agent, "fresh-"+s.agent, isolate.Request{URL: "http://x/"})
		cancel()
		if s.agent == "setter" {
			_, err = m.Call(ctx, s.agent, "s", isolate.Request{URL: "http://x/"})
		}
		if p := api.AsProblem(err); !api.IsKind(err, api.KindSessionTimeout) || !strings.Contains(p.Detail, "limits.wall_ms") {
			t.Errorf("%s: %v, want session-timeout naming limits.wall_ms", s.what, err)
		}
	}
}
