package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle/jsbuild"
	"github.com/agentcloud/agentcloud/internal/config"
)

// TestInitScaffoldTestsAndDeploys: what `init` writes, in either language,
// passes `agentcloud test`, deploys and answers through `call`, against a
// real daemon; `types` rewrites the declarations.
func TestInitScaffoldTestsAndDeploys(t *testing.T) {
	clearClientEnv(t)
	var data string
	d := newDaemon(t, func(c *config.Config) { data = c.Data })
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, tc := range []struct{ name, lang, entry string }{
		{"hello-ts", "ts", "src/index.ts"},
		{"hello-js", "js", "src/index.js"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			dir := filepath.Join(work, tc.name)
			if code, out, errOut := runCLI(t, "init", "--lang", tc.lang, dir); code != 0 || !strings.Contains(out, "created "+dir) {
				t.Fatalf("init: %d %q %q", code, out, errOut)
			}
			for _, f := range []string{tc.entry, "tests/index.test" + filepath.Ext(tc.entry)} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			if code, out, errOut := runCLI(t, "--data", data, "test", dir); code != 0 || !strings.Contains(out, "2 tests passed") {
				t.Fatalf("test: %d %q %q", code, out, errOut)
			}
			if code, out, errOut := runCLI(t, "--data", data, "deploy", dir); code != 0 {
				t.Fatalf("deploy: %d %q %q", code, out, errOut)
			}
			code, out, errOut := runCLI(t, "--data", data, "call", tc.name+"/alice", "/x")
			if code != 0 || !strings.Contains(out, `"message":"hello from `+tc.name+`"`) || !strings.Contains(out, `"visits":1`) {
				t.Fatalf("call: %d %q %q", code, out, errOut)
			}
			if tc.lang == "ts" {
				os.Remove(filepath.Join(dir, jsbuild.TypesFile))
				if code, _, errOut := runCLI(t, "types", dir); code != 0 {
					t.Fatalf("types: %d %q", code, errOut)
				}
				if b, err := os.ReadFile(filepath.Join(dir, jsbuild.TypesFile)); err != nil || !strings.Contains(string(b), `readonly agent: "hello-ts"`) {
					t.Fatalf("types wrote %q, %v", b, err)
				}
			}
		})
	}
	// sessions list without --agent: the sessions of every agent; a caller
	// no policy lets read agents sees none of them.
	code, out, errOut := runCLI(t, "--data", data, "sessions", "list")
	if code != 0 || !strings.Contains(out, "AGENT") || !regexp.MustCompile(`hello-ts\s+alice`).MatchString(out) || !regexp.MustCompile(`hello-js\s+alice`).MatchString(out) {
		t.Fatalf("sessions list: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "--data", data, "-o", "json", "token", "create", "--subject", "user:mallory", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("token create: %d %q", code, errOut)
	}
	tok := jsonField(t, out, "token")
	code, out, errOut = runCLI(t, "--data", data, "--token", tok, "-o", "json", "sessions", "list")
	if code != 0 || strings.Contains(out, "hello-") {
		t.Fatalf("sessions list as another principal: %d %q %q", code, out, errOut)
	}
}

// TestAuthoringCommandErrorClass: init, types and deploy refuse bad input
// with a message naming the problem and the fix, before any daemon is
// asked (none runs here).
func TestAuthoringCommandErrorClass(t *testing.T) {
	clearClientEnv(t)
	work := t.TempDir()
	exists := filepath.Join(work, "exists")
	os.Mkdir(exists, 0o755)
	broken := filepath.Join(work, "broken")
	if code, _, errOut := runCLI(t, "init", broken); code != 0 {
		t.Fatal(errOut)
	}
	os.WriteFile(filepath.Join(broken, "src", "index.ts"), []byte("import x from \"left-pad\";\nexport default { fetch() { return new Response(x) } };\n"), 0o644)
	syntax := filepath.Join(work, "syntax")
	if code, _, errOut := runCLI(t, "init", syntax); code != 0 {
		t.Fatal(errOut)
	}
	os.WriteFile(filepath.Join(syntax, "src", "index.ts"), []byte("export default {\n  fetch( {\n};\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"init", exists}, []string{"already exists"}},
		{[]string{"init", filepath.Join(work, "Bad_Name")}, []string{"not an agent name", "such as \"bad-name\""}},
		{[]string{"init", "--lang", "rust", filepath.Join(work, "x")}, []string{"invalid --lang", "want ts or js"}},
		{[]string{"types", exists}, []string{"agent.json"}},
		{[]string{"deploy", broken}, []string{"src/index.ts:1:15: Could not resolve \"left-pad\"", "npm install left-pad"}},
		{[]string{"test", broken}, []string{"src/index.ts:1:15:"}},
		{[]string{"deploy", syntax}, []string{"src/index.ts:3:2: Expected \")\" but found \";\"; write \")\" there"}},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code == 0 {
			t.Errorf("%v: exit 0", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(work, "Bad_Name")); err == nil {
		t.Error("init created a directory for an invalid name")
	}
}
