package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/google/jsonschema-go/jsonschema"
)

func TestToolsSortedWithValidSchemas(t *testing.T) {
	p := New(Deps{})
	ts, _ := p.Tools(context.Background())
	var names []string
	for _, tl := range ts {
		names = append(names, tl.Name)
		var s jsonschema.Schema
		if err := json.Unmarshal(tl.InputSchema, &s); err != nil {
			t.Fatalf("%s: schema does not parse: %v", tl.Name, err)
		}
		if _, err := s.Resolve(nil); err != nil || s.Type != "object" {
			t.Fatalf("%s: schema does not resolve to an object schema: %v", tl.Name, err)
		}
		if tl.Description == "" || tl.Source != toolbox.BuiltinProvider {
			t.Errorf("%s: description or source missing", tl.Name)
		}
	}
	if !slices.IsSorted(names) || len(names) != 10 {
		t.Fatalf("tools: %v", names)
	}
}

// Without the platform parts, each tool says it is unavailable rather than
// failing obscurely (args here already passed schema validation).
func TestUnavailableWithoutParts(t *testing.T) {
	tb := toolbox.New(toolbox.Config{Builtins: New(Deps{})})
	c := toolbox.Caller{Principal: "spiffe://t/user/u"}
	for name, args := range map[string]string{
		"run_code":     `{"language":"python","code":"print(1)"}`,
		"state_get":    `{"agent":"a","session":"s","key":"k"}`,
		"http_fetch":   `{"url":"https://example.com/"}`,
		"list_agents":  `{}`,
		"call_agent":   `{"agent":"a","session":"s"}`,
		"deploy_agent": `{"files":{"agent.json":"{}"}}`,
		"search_tools": `{"query":"x"}`,
	} {
		_, err := tb.Call(context.Background(), c, name, json.RawMessage(args))
		if name == "deploy_agent" {
			continue // the bundle is checked first; covered in the daemon tests
		}
		if !errors.Is(err, toolbox.ErrUnavailable) {
			t.Errorf("%s: want unavailable, got %v", name, err)
		}
	}
	res, err := tb.Call(context.Background(), c, "ping", nil)
	if err != nil || res.Text != "pong" {
		t.Fatalf("ping: %+v %v", res, err)
	}
}

func TestWorkspacePath(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt": "/workspace/a.txt", "d/e.csv": "/workspace/d/e.csv", "/workspace/x": "/workspace/x",
		"./b": "/workspace/b", "../etc/passwd": "", "/etc/passwd": "", "/workspace": "", "": "", "a\x00b": "",
		"/workspace/../tmp/x": "", "d/../../x": "",
	} {
		got, err := workspacePath(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("workspacePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCappedAndSummary(t *testing.T) {
	c := &capped{max: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatal("capped must accept everything")
		}
	}
	if c.buf.String() != "abcde" || !c.truncated {
		t.Fatalf("capped: %q %v", c.buf.String(), c.truncated)
	}
	s := summary(RunCodeOutput{ExitCode: 2, Stdout: "out", Stderr: "err\n", Files: []WrittenFile{{Path: "/workspace/f", Size: 3}}})
	for _, want := range []string{"exit code 2", "--- stdout\nout\n", "--- stderr\nerr\n", "wrote /workspace/f (3 bytes)"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary %q lacks %q", s, want)
		}
	}
	if s := summary(RunCodeOutput{TimedOut: true}); !strings.HasPrefix(s, "timed out") {
		t.Errorf("timeout summary %q", s)
	}
}

// FuzzWorkspacePath: whatever a files key is, an accepted path is clean
// and strictly under /workspace.
func FuzzWorkspacePath(f *testing.F) {
	for _, s := range []string{"a.txt", "../x", "/workspace/../../etc", "d//e/./f", "/workspace/", "..", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := workspacePath(p)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/workspace/") || path.Clean(got) != got || strings.Contains(got, "/../") {
			t.Fatalf("workspacePath(%q) = %q", p, got)
		}
	})
}
