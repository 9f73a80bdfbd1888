package jstest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

var testRuntime *isolate.Runtime

func TestMain(m *testing.M) {
	os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int { testRuntime = rt; return m.Run() }))
}

// NewForManager is how the daemon wires the runner to the session manager.
func newRunner(t testing.TB, m *session.Manager, fileTimeout time.Duration) *Runner {
	r, err := New(Config{Runtime: testRuntime, FileTimeout: fileTimeout,
		NewScratch: func(ctx context.Context, agent, digest, name string) (Scratch, error) {
			return m.NewScratch(ctx, agent, digest, name)
		}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openManager(t testing.TB) *session.Manager {
	st, err := store.Open(context.Background(), store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.New(context.Background(), session.Config{Store: st, Runtime: testRuntime})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), session.Bindings{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()); _ = st.Close() })
	return m
}

const agentJS = `export default { async fetch(req, env) {
  const url = new URL(req.url);
  if (url.pathname === "/count") {
    const n = ((await env.state.get("n")) || 0) + 1;
    await env.state.put("n", n);
    return Response.json({n});
  }
  if (url.pathname === "/out") {
    try { await fetch("http://example.com/"); return new Response("reached"); } catch (e) { return new Response("blocked: " + e.message, {status: 502}); }
  }
  return new Response("hello");
} };`

// stage stores a version with tests and returns the test input.
func stage(t testing.TB, m *session.Manager, tests map[string]string) pipeline.TestInput {
	files := map[string][]byte{"agent.json": []byte(`{"name":"tested","entry":"agent.js"}`), "agent.js": []byte(agentJS),
		"lib.js": []byte(`export const double = (x) => x * 2;`)}
	for p, s := range tests {
		files[p] = []byte(s)
	}
	b, err := bundle.FromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.StoreVersion(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return pipeline.TestInput{Run: "run-test", Agent: "tested", Version: b.Digest, Bundle: b}
}

// TestJSTestAPI: the Jest-like API passes what it should and fails what it
// should, fetch reaches a fresh session of the version under test per file,
// and imports of the bundle's modules work.
func TestJSTestAPI(t *testing.T) {
	m := openManager(t)
	r := newRunner(t, m, 10*time.Second)
	in := stage(t, m, map[string]string{
		"tests/a.test.js": `import { double } from "../lib.js";
test("greets", async () => {
  const res = await fetch("http://session/");
  expect(res.status).toBe(200);
  expect(await res.text()).toMatch(/hello/);
});
test("fresh state and counts", async () => {
  for (const want of [1, 2]) {
    const res = await fetch("http://session/count");
    expect(await res.json()).toEqual({n: want});
  }
});
test("matchers", async () => {
  expect(double(2)).toBe(4);
  expect({a: [1, {b: 2}]}).toEqual({a: [1, {b: 2}]});
  expect({a: 1}).not.toEqual({a: 2});
  expect("abc").toMatch("b");
  expect(() => { throw new TypeError("bad thing"); }).toThrow("bad");
  expect(() => {}).not.toThrow();
  await expect(async () => { throw new Error("later"); }).toThrow(/later/);
  expect([1, 2]).toContain(2);
});
test.skip("skipped", () => { throw new Error("never"); });`,
		"tests/b.test.js": `test("fresh session per file", async () => {
  const res = await fetch("http://session/count");
  expect((await res.json()).n).toBe(1);
});
test("fails with output", () => {
  console.log("about to fail", {x: 1});
  expect(1 + 1).toBe(3);
});`,
	})
	rep, err := r.Test(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed || len(rep.Files) != 2 {
		t.Fatalf("report %+v", rep)
	}
	a, b := rep.Files[0], rep.Files[1]
	if a.Error != "" || len(a.Tests) != 4 {
		t.Fatalf("a: %+v", a)
	}
	for _, c := range a.Tests[:3] {
		if c.Result != api.TestPassed {
			t.Fatalf("a: %s %s: %s", c.Name, c.Result, c.Error)
		}
	}
	if a.Tests[3].Result != api.TestSkipped {
		t.Fatalf("skip: %+v", a.Tests[3])
	}
	if b.Tests[0].Result != api.TestPassed {
		t.Fatalf("b fresh: %+v", b.Tests[0])
	}
	f := b.Tests[1]
	if f.Result != api.TestFailed || !strings.Contains(f.Error, "expected: 2 to be 3") || !strings.Contains(f.Output, `about to fail {"x":1}`) {
		t.Fatalf("failing test: %+v", f)
	}
	sum := pipeline.Summarize(rep)
	if sum.Failure == nil || sum.Failure.Name != "fails with output" || sum.Total != 6 || sum.Failed != 1 {
		t.Fatalf("summary %+v", sum)
	}
}

// TestJSTestHostileClass: test files that hang, loop, reach for the
// network, do not parse, print without end, or register nonsense fail
// their file or test with a reason; the stage goes on with the next file.
func TestJSTestHostileClass(t *testing.T) {
	m := openManager(t)
	r := newRunner(t, m, 2*time.Second)
	cases := map[string]struct{ src, want string }{
		"hang":      {`test("hangs", () => new Promise(() => {}));`, "did not settle"},
		"loop":      {`test("loops", () => { for (;;) {} });`, "did not finish"},
		"toplevel":  {`for (;;) {}`, "did not load in time"},
		"network":   {`test("net", async () => { await fetch("http://example.com/"); });`, "may fetch only http://session/"},
		"loopback":  {`test("net", async () => { await fetch("http://127.0.0.1:1/"); });`, "may fetch only http://session/"},
		"viaagent":  {`test("net", async () => { const r = await fetch("http://session/out"); expect(r.status).toBe(200); });`, "expected: 502 to be 200"},
		"syntax":    {`test("x", () => { ;`, "SyntaxError"},
		"badtest":   {`test(42, 42);`, "TypeError"},
		"noisy":     {`test("noisy", () => { for (let i = 0; i < 5000; i++) console.log("x".repeat(100)); throw new Error("after noise"); });`, "after noise"},
		"throwsobj": {`test("obj", () => { throw {code: 7}; });`, `thrown: {"code":7}`},
		"state":     {`test("state", async () => { await env.state.get("x"); });`, "env is not defined"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := stage(t, m, map[string]string{"tests/x.test.js": c.src})
			in.Run = "run-" + name
			rep, err := r.Test(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Passed || len(rep.Files) != 1 {
				t.Fatalf("report %+v", rep)
			}
			f := rep.Files[0]
			msg := f.Error
			for _, tc := range f.Tests {
				msg += tc.Error
				if len(tc.Output) > 9000 {
					t.Fatalf("output not bounded: %d bytes", len(tc.Output))
				}
			}
			if !strings.Contains(msg, c.want) {
				t.Fatalf("got %q, want %q", clip(msg), c.want)
			}
		})
	}
}

// TestJSTestStopsAtStageLimit: the caller's context (the stage's time
// limit) stops a hanging file at once.
func TestJSTestStopsAtStageLimit(t *testing.T) {
	m := openManager(t)
	r := newRunner(t, m, time.Minute)
	in := stage(t, m, map[string]string{"tests/x.test.js": `test("hangs", () => { for (;;) {} });`})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := r.Test(ctx, in); err == nil {
		t.Fatal("a hanging test outlived the stage's context")
	}
}
