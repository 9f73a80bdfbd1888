package session

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/bundle/jsbuild"
)

// TestTypeScriptAgentRunsWithSourceMappedErrors: an agent directory with
// TypeScript and an npm dependency (ms, vendored in jsbuild's testdata),
// built as the CLI builds it, deploys and runs; an uncaught error names the
// line of the agent's .ts source, not of the built module.
func TestTypeScriptAgentRunsWithSourceMappedErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../bundle/jsbuild/testdata/tsagent")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "node_modules"), os.DirFS("../bundle/jsbuild/testdata/npm")); err != nil {
		t.Fatal(err)
	}
	res, err := jsbuild.BuildDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := openManager(t, t.TempDir())
	if _, err := m.Deploy(context.Background(), Principal{}, res.Bundle); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Greeting   struct{ Text string }
		TwoMinutes int
	}
	if err := json.Unmarshal([]byte(mustCall(t, m, "ts-agent", "s", "/")), &got); err != nil {
		t.Fatal(err)
	}
	if got.Greeting.Text != "hello, typescript" || got.TwoMinutes != 120000 {
		t.Fatalf("answer = %+v", got)
	}
	_, _, err = call(t, m, "ts-agent", "s", "GET", "/boom", "")
	if !api.IsKind(err, api.KindAgentError) || !strings.Contains(err.Error(), "agent failed: kaput (at src/index.ts:21:") {
		t.Fatalf("err = %v, want the agent's error placed at src/index.ts:21", err)
	}
}

// TestUncaughtErrorPlaceClass: without a source map the error names the
// bundle file and line; a corrupt map falls back to the same; an error
// thrown by no agent code gets no place.
func TestUncaughtErrorPlaceClass(t *testing.T) {
	const code = "\nfunction inner() {\n  throw new TypeError(\"nope\");\n}\nexport default { async fetch() { inner(); } };\n"
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"no map", map[string][]byte{}, "nope (at agent.js:3:"},
		{"corrupt map", map[string][]byte{"agent.js.map": []byte(`{"version":3,"sources":["x.ts"],"mappings":"!!!"}`)}, "nope (at agent.js:3:"},
		{"map out of range", map[string][]byte{"agent.js.map": []byte(`{"version":3,"sources":["x.ts"],"mappings":";;ACAA"}`)}, "nope (at agent.js:3:"},
		{"map to source", map[string][]byte{"agent.js.map": []byte(`{"version":3,"sources":["src/x.ts"],"mappings":";;AAOA"}`)}, "nope (at src/x.ts:8:1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string][]byte{"agent.json": []byte(`{"name":"thrower","entry":"agent.js"}`), "agent.js": []byte(code)}
			for p, c := range tc.files {
				files[p] = c
			}
			b, err := bundle.FromFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			m := openManager(t, t.TempDir())
			if _, err := m.Deploy(context.Background(), Principal{}, b); err != nil {
				t.Fatal(err)
			}
			_, _, err = call(t, m, "thrower", "s", "GET", "/", "")
			if !api.IsKind(err, api.KindAgentError) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
