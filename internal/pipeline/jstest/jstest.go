// Package jstest is the pipeline's JavaScript test stage: each
// tests/*.test.js file of a bundle runs in a fresh isolate (the real
// internal/isolate runtime) with a small test API in the manner of Jest and
// Vitest (global test(name, async fn), expect(x).toBe / toEqual / toMatch /
// toThrow and .not, console output captured per test), and a global fetch
// whose requests to http://session/... reach a fresh scratch session of the
// version under test (its own state, removed afterwards; the session's own
// outbound requests go through the node's egress rules for the version's
// manifest). The test isolate itself reaches nothing else: a fetch to any
// other URL fails.
package jstest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/pipeline"
)

//go:embed harness.js
var harness string

// Scratch is a fresh session of the version under test.
type Scratch interface {
	Call(ctx context.Context, req isolate.Request) (isolate.Response, error)
	Close(ctx context.Context) error
}

// Config configures a Runner.
type Config struct {
	Runtime *isolate.Runtime
	// NewScratch starts a fresh scratch session of version digest of agent
	// (the session manager's NewScratch); name tells them apart.
	NewScratch func(ctx context.Context, agent, digest, name string) (Scratch, error)
	// MemoryMiB caps a test isolate (default 64).
	MemoryMiB int
	// FileTimeout bounds one test file (default 30s); the stage's own time
	// limit bounds them all.
	FileTimeout time.Duration
}

// Runner runs a bundle's JS tests. It satisfies pipeline.Tester.
type Runner struct{ cfg Config }

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Runtime == nil || cfg.NewScratch == nil {
		return nil, errors.New("jstest: Runtime and NewScratch are required")
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 64
	}
	if cfg.FileTimeout <= 0 {
		cfg.FileTimeout = 30 * time.Second
	}
	return &Runner{cfg: cfg}, nil
}

var _ pipeline.Tester = (*Runner)(nil)

// Test implements pipeline.Tester: every test file, in order, each in its
// own isolate against its own scratch session. A bundle without test files
// passes with no tests.
func (r *Runner) Test(ctx context.Context, in pipeline.TestInput) (api.PipelineTestReport, error) {
	rep := api.PipelineTestReport{Passed: true, Files: []api.PipelineTestFile{}}
	for i, file := range pipeline.TestFiles(in.Bundle) {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		f, err := r.runFile(ctx, in, file, fmt.Sprintf("%s-%d", in.Run, i))
		if err != nil {
			return rep, err
		}
		for _, c := range f.Tests {
			if c.Result == api.TestFailed {
				rep.Passed = false
			}
		}
		if f.Error != "" {
			rep.Passed = false
		}
		rep.Files = append(rep.Files, f)
	}
	return rep, nil
}

const runnerModule = `import { run } from "__jstest_harness__";
import "__jstest_file__";
export default { async fetch() { return new Response(JSON.stringify(await run())); } };`

// modules maps the specifiers a test file may import: the bundle's other
// JS files by path, "./path", and relative to tests/ ("../path").
func modules(in pipeline.TestInput, file string) map[string]string {
	mods := map[string]string{"__jstest_harness__": harness, "__jstest_file__": string(in.Bundle.Files[file])}
	for p, data := range in.Bundle.Files {
		if !strings.HasSuffix(p, ".js") && !strings.HasSuffix(p, ".mjs") {
			continue
		}
		mods[p] = string(data)
		mods["./"+p] = string(data)
		if strings.HasPrefix(p, "tests/") {
			mods["./"+strings.TrimPrefix(p, "tests/")] = string(data)
		} else {
			mods["../"+p] = string(data)
		}
	}
	return mods
}

// runFile runs one test file in a fresh isolate.
func (r *Runner) runFile(ctx context.Context, in pipeline.TestInput, file, name string) (api.PipelineTestFile, error) {
	out := api.PipelineTestFile{File: file, Tests: []api.PipelineTestCase{}}
	sc, err := r.cfg.NewScratch(ctx, in.Agent, in.Version, name)
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out.Error = "the version under test did not start: " + err.Error()
		return out, nil
	}
	defer func() { _ = sc.Close(context.WithoutCancel(ctx)) }()
	fctx, cancel := context.WithTimeout(ctx, r.cfg.FileTimeout)
	defer cancel()
	iso, err := r.cfg.Runtime.New(fctx, isolate.Spec{Agent: in.Agent, SessionID: "test", Module: runnerModule,
		ModuleName: "__jstest__.js", Modules: modules(in, file), MemoryMiB: r.cfg.MemoryMiB})
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out.Error = loadError(err, fctx)
		return out, nil
	}
	defer func() { _ = iso.Close(context.WithoutCancel(ctx)) }()
	h := &testHost{sc: sc}
	resp, err := iso.Fetch(fctx, isolate.Request{Method: "POST", URL: "http://jstest/run"}, h)
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		out.Error = runError(err, fctx, r.cfg.FileTimeout)
		return out, nil
	}
	var cases []api.PipelineTestCase
	if err := json.Unmarshal(resp.Body, &cases); err != nil {
		out.Error = "the test harness answered malformed results: " + err.Error()
		return out, nil
	}
	for i := range cases {
		if cases[i].Result != api.TestPassed && cases[i].Result != api.TestSkipped {
			cases[i].Result = api.TestFailed
		}
	}
	out.Tests = cases
	return out, nil
}

func loadError(err error, ctx context.Context) string {
	if ctx.Err() != nil {
		return "the test file did not load in time (it may loop at top level)"
	}
	var js *isolate.JSError
	if errors.As(err, &js) {
		return js.Error()
	}
	return err.Error()
}

func runError(err error, ctx context.Context, limit time.Duration) string {
	if ctx.Err() != nil || errors.Is(err, isolate.ErrTimeout) {
		return fmt.Sprintf("the tests did not finish within %s (a test hangs or loops)", limit)
	}
	if errors.Is(err, isolate.ErrMemoryExceeded) {
		return "the tests ran out of memory"
	}
	if errors.Is(err, isolate.ErrResponseTooLarge) {
		return "the test results are too large (too many tests or too much output)"
	}
	var js *isolate.JSError
	if errors.As(err, &js) {
		return js.Error()
	}
	return err.Error()
}

// testHost is the test isolate's host: fetches to http://session/ go to
// the scratch session, nothing else is reachable, and the test isolate
// has no state, alarms or services of its own.
type testHost struct{ sc Scratch }

var errNoState = errors.New("tests have no state of their own: fetch http://session/ to exercise the agent")

func (h *testHost) StateGet(string) ([]byte, bool, error) { return nil, false, errNoState }
func (h *testHost) StatePut(string, []byte) error         { return errNoState }
func (h *testHost) StateDelete(string) error              { return errNoState }
func (h *testHost) StateList(string, int) ([]isolate.KV, error) {
	return nil, errNoState
}
func (h *testHost) SetAlarm(time.Time) error           { return errNoState }
func (h *testHost) GetAlarm() (time.Time, bool, error) { return time.Time{}, false, nil }
func (h *testHost) DeleteAlarm() error                 { return nil }
func (h *testHost) Invoke(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errors.New("NotSupportedError: tests cannot call platform services")
}
func (h *testHost) Log(string, string) {}

// Fetch sends http://session/... to the scratch session (as
// http://agents.local/..., how traffic reaches a session) and refuses any
// other destination.
func (h *testHost) Fetch(ctx context.Context, req isolate.Request) (isolate.Response, error) {
	u, err := url.Parse(req.URL)
	if err != nil || u.Scheme != "http" || u.Host != "session" {
		return isolate.Response{}, fmt.Errorf("TypeError: tests may fetch only http://session/... (the version under test), not %s", clip(req.URL))
	}
	u.Host = "agents.local"
	u.Path = path.Clean("/" + u.Path)
	req.URL = u.String()
	resp, err := h.sc.Call(ctx, req)
	if err != nil {
		var p *api.Problem
		if errors.As(err, &p) {
			body, _ := json.Marshal(p)
			return isolate.Response{Status: p.Status, Headers: [][2]string{{"Content-Type", "application/problem+json"}}, Body: body}, nil
		}
		return isolate.Response{}, err
	}
	return resp, nil
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}
