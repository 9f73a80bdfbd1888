package pipeline_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/pipeline/jstest"
	"github.com/agentcloud/agentcloud/internal/session"
)

func jsTester(fileTimeout time.Duration) func(*session.Manager) pipeline.Tester {
	return func(m *session.Manager) pipeline.Tester {
		r, err := jstest.New(jstest.Config{Runtime: pipeline.SharedRuntime(), FileTimeout: fileTimeout,
			NewScratch: func(ctx context.Context, agent, digest, name string) (jstest.Scratch, error) {
				return m.NewScratch(ctx, agent, digest, name)
			}})
		if err != nil {
			panic(err)
		}
		return r
	}
}

const greeterJS = `export default { async fetch(req, env) {
  const url = new URL(req.url);
  if (url.pathname === "/count") {
    const n = ((await env.state.get("n")) || 0) + 1;
    await env.state.put("n", n);
    return Response.json({n});
  }
  return new Response("hello VERSION");
} };`

const twoTests = `test("greets", async () => {
  const res = await fetch("http://session/");
  expect(await res.text()).toMatch(/^hello /);
});
test("counts from one", async () => {
  const res = await fetch("http://session/count");
  expect(await res.json()).toEqual({n: 1});
});`

func greeter(tb testing.TB, name, version, tests string) *bundle.Bundle {
	files := map[string][]byte{"agent.json": []byte(`{"name":"` + name + `","entry":"agent.js"}`),
		"agent.js": []byte(strings.ReplaceAll(greeterJS, "VERSION", version))}
	if tests != "" {
		files["tests/main.test.js"] = []byte(tests)
	}
	b, err := bundle.FromFiles(files)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestPipelineTestStageClass: the JS tests of a bundle gate its release:
// passing tests release it (against a scratch session, so production
// state is untouched); a failing test, a hanging test (stopped by the
// stage's time limit), a test reaching for the network or a malformed test
// file stop the run naming the test, and the old version keeps serving.
func TestPipelineTestStageClass(t *testing.T) {
	ctx := context.Background()
	te := pipeline.OpenTestEnv(t, t.TempDir(), jsTester(5*time.Second), func(c *pipeline.Config) { c.TestTimeout = 3 * time.Second })
	run, err := te.Runner().Submit(ctx, pipeline.Submission{Bundle: greeter(t, "greeter", "v1", twoTests), Principal: pipeline.Alice})
	if err != nil {
		t.Fatal(err)
	}
	if run = te.Wait(t, run.ID); run.State != api.RunPassed || run.Tests == nil || run.Tests.Total != 2 || !run.Tests.Passed {
		t.Fatalf("v1: %s %s %+v", run.State, run.Error, run.Tests)
	}
	// Production state: one count; the tests' counts were elsewhere.
	resp, err := te.Sessions().Call(ctx, "greeter", "prod", isolateReq("/count"))
	if err != nil || string(resp.Body) != `{"n":1}` {
		t.Fatalf("production count %s %v", resp.Body, err)
	}
	rep, err := te.Runner().TestReport(ctx, run.ID)
	if err != nil || len(rep.Files) != 1 || len(rep.Files[0].Tests) != 2 {
		t.Fatalf("report %+v %v", rep, err)
	}
	cases := map[string]struct{ tests, want string }{
		"failing":   {`test("adds up", () => { console.log("one plus one"); expect(1 + 1).toBe(3); });`, `test "adds up" in tests/main.test.js failed`},
		"hanging":   {`test("spins", () => { for (;;) {} });`, "did not finish"},
		"network":   {`test("calls home", async () => { await fetch("https://example.com/"); });`, "may fetch only http://session/"},
		"malformed": {`test("broken", () => {`, "SyntaxError"},
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		c := cases[n]
		t.Run(n, func(t *testing.T) {
			run, err := te.Runner().Submit(ctx, pipeline.Submission{Bundle: greeter(t, "greeter", fmt.Sprintf("bad%d", i), c.tests), Principal: pipeline.Alice})
			if err != nil {
				t.Fatal(err)
			}
			run = te.Wait(t, run.ID)
			if run.State != api.RunFailed || !strings.Contains(run.Error, c.want) || !strings.HasPrefix(run.Error, "test:") {
				t.Fatalf("run %s: %q, want %q", run.State, run.Error, c.want)
			}
			if got := te.Serving(t, "greeter"); got != "hello v1" {
				t.Fatalf("serving %q after a failed run", got)
			}
		})
	}
}

func isolateReq(path string) isolate.Request {
	return isolate.Request{Method: "GET", URL: "http://agents.local" + path}
}
