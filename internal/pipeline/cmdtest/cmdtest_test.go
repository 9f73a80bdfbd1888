package cmdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

func TestMain(m *testing.M) {
	process.MaybeRunInit()
	os.Exit(m.Run())
}

func manager(t *testing.T) *sandbox.Manager {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := process.New(process.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(); _ = tier.Close() })
	return m
}

func input(t *testing.T, run, cmd string) pipeline.TestInput {
	b, err := bundle.FromFiles(map[string][]byte{
		"agent.json":       []byte(`{"name":"cmd","entry":"agent.js","test":` + quote(cmd) + `}`),
		"agent.js":         []byte(`export default { fetch() { return new Response("x"); } };`),
		"tests/check.sh":   []byte("test -f agent.js && grep -q Response agent.js && echo checked-out\n"),
		"tests/data/x.txt": []byte("deep\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.TestInput{Run: run, Agent: "cmd", Version: b.Digest, Bundle: b}
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

// TestCommandStageClass: the manifest's test command runs in a sandbox
// with the bundle checked out; exit 0 passes, anything else fails with the
// end of the output; a command that hangs is stopped at its time limit;
// output beyond the limit is cut from the front; the network is what the
// sandbox manager allows (none here).
func TestCommandStageClass(t *testing.T) {
	m := manager(t)
	r, err := New(Config{Sandboxes: m, Timeout: 3 * time.Second, MaxOutput: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cases := []struct {
		name, cmd string
		pass      bool
		out       string
		timedOut  bool
	}{
		{"passes", "sh tests/check.sh && cat tests/data/x.txt", true, "checked-out\ndeep", false},
		{"python", `python3 -c "print(6 * 7)"`, true, "42", false},
		{"fails", "echo boom >&2; exit 3", false, "boom", false},
		{"hangs", "sleep 60", false, "", true},
		{"noisy", "yes noise | head -c 100000; echo THE-END; exit 1", false, "THE-END", false},
		{"network", fmt.Sprintf(`python3 -c "import socket; socket.create_connection(('127.0.0.1', %d), 2)" 2>/dev/null && echo connected || echo no-network; exit 1`, port), false, "no-network", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := r.Test(context.Background(), input(t, "run-"+c.name, c.cmd))
			if err != nil {
				t.Fatal(err)
			}
			res := rep.Command
			if rep.Passed != c.pass || res == nil || !strings.Contains(res.Output, c.out) || res.TimedOut != c.timedOut {
				t.Fatalf("report %+v command %+v", rep, res)
			}
			if len(res.Output) > 1024+64 {
				t.Fatalf("output not bounded: %d bytes", len(res.Output))
			}
			if s := pipeline.Summarize(rep); s.Passed != c.pass {
				t.Fatalf("summary %+v", s)
			}
		})
	}
	if len(m.List()) != 0 {
		t.Fatalf("sandboxes left: %v", m.List())
	}
	// No command: nothing runs, the stage passes.
	in := input(t, "run-none", "x")
	in.Bundle.Manifest.Test = ""
	if rep, err := r.Test(context.Background(), in); err != nil || !rep.Passed || rep.Command != nil {
		t.Fatalf("no command: %+v %v", rep, err)
	}
	// Combined with another tester, both must pass.
	both := Tester{r, failing{}}
	if rep, err := both.Test(context.Background(), input(t, "run-both", "true")); err != nil || rep.Passed || rep.Command == nil || len(rep.Files) != 1 {
		t.Fatalf("combined: %+v %v", rep, err)
	}
}

type failing struct{}

func (failing) Test(context.Context, pipeline.TestInput) (api.PipelineTestReport, error) {
	return api.PipelineTestReport{Passed: false, Files: []api.PipelineTestFile{{File: "tests/x.test.js", Tests: []api.PipelineTestCase{{Name: "x", Result: api.TestFailed}}}}}, nil
}
