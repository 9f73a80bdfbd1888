package jsbuild

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// agentDir copies testdata/tsagent to a temporary directory with the
// vendored npm packages of testdata/npm as its node_modules (npm would put
// them there; the tests reach no registry).
func agentDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/tsagent")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "node_modules"), os.DirFS("testdata/npm")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildTypeScriptWithNpmDependency(t *testing.T) {
	dir := agentDir(t)
	write(t, dir, ".agentcloud/stale.js", "stale build output") // left out
	res, err := BuildDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := res.Bundle
	if !res.Built || res.Entry != ".agentcloud/src/index.js" || b.Entry != res.Entry {
		t.Fatalf("built = %v, entry %q, manifest entry %q", res.Built, res.Entry, b.Entry)
	}
	code := string(b.EntryFile())
	for _, want := range []string{"export {", "hello, ${name}", "365.25", "//# sourceMappingURL=index.js.map"} {
		if !strings.Contains(code, want) {
			t.Errorf("built module lacks %q:\n%s", want, code)
		}
	}
	if strings.Contains(code, "interface Answer") || strings.Contains(code, ": string") {
		t.Errorf("types left in the built module:\n%s", code)
	}
	for p := range b.Files {
		if strings.HasPrefix(p, "node_modules/") || p == ".agentcloud/stale.js" {
			t.Errorf("bundle holds %s", p)
		}
	}
	for _, p := range []string{"src/index.ts", "src/greet.ts", "package.json", ".agentcloud/src/index.js.map"} {
		if _, ok := b.Files[p]; !ok {
			t.Errorf("bundle lacks %s", p)
		}
	}
	sm, err := bundle.ParseSourceMap(b.Files[".agentcloud/src/index.js.map"])
	if err != nil {
		t.Fatal(err)
	}
	// The throw in fail() maps back to src/index.ts line 21.
	for i, line := range strings.Split(code, "\n") {
		if col := strings.Index(line, "throw new Error(`agent failed"); col >= 0 {
			src, l, _, ok := sm.Lookup(i+1, col+1)
			if !ok || src != "../../src/index.ts" || l != 21 {
				t.Fatalf("throw maps to %q line %d (%v), want ../../src/index.ts line 21", src, l, ok)
			}
		}
	}
	// The uploaded bundle parses under the daemon's strict rules.
	tgz, err := b.TarGz()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.LoadTarGz(strings.NewReader(string(tgz))); err != nil {
		t.Fatalf("daemon would refuse the built bundle: %v", err)
	}
	// Building is deterministic: the same sources give the same digest.
	again, err := BuildDir(dir)
	if err != nil || again.Bundle.Digest != b.Digest {
		t.Fatalf("rebuild: %v, digest %s vs %s", err, again.Bundle.Digest, b.Digest)
	}
}

// TestBuildTypeScriptTests: tests/*.test.ts are bundled into the
// tests/*.test.js the pipeline runs; a .ts and a .js of the same test is
// an error, and TypeScript tests alone make a plain JS agent build.
func TestBuildTypeScriptTests(t *testing.T) {
	dir := agentDir(t)
	write(t, dir, "tests/greet.test.ts", "import { greet } from \"../src/greet\";\nconst name: string = \"x\";\ntest(\"greets\", () => { expect(greet(name).text).toBe(\"hello, x\"); });\n")
	res, err := BuildDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	js := string(res.Bundle.Files["tests/greet.test.js"])
	if !strings.Contains(js, "function greet(") || strings.Contains(js, ": string") || res.Bundle.Files["tests/greet.test.js.map"] == nil {
		t.Fatalf("tests/greet.test.js:\n%s", js)
	}
	write(t, dir, "tests/greet.test.js", "test(\"dup\", () => {});\n")
	if _, err := BuildDir(dir); !errors.Is(err, ErrBuild) || !strings.Contains(err.Error(), "keep one of them") {
		t.Fatalf("err = %v, want ErrBuild naming both files", err)
	}
	plain := t.TempDir()
	write(t, plain, "agent.json", `{"name":"plain","entry":"index.js"}`)
	write(t, plain, "index.js", `export default { fetch() { return new Response("hi") } }`)
	write(t, plain, "tests/a.test.ts", "const n: number = 1;\ntest(\"n\", () => { expect(n).toBe(1); });\n")
	res, err = BuildDir(plain)
	if err != nil || !res.Built || res.Bundle.Files["tests/a.test.js"] == nil {
		t.Fatalf("plain agent with a TS test: %v, %+v", err, res)
	}
}

func TestBuildNotNeededKeepsDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "agent.json", `{"name":"plain","entry":"index.js"}`)
	write(t, dir, "index.js", `export default { fetch() { return new Response("hi") } }`)
	res, err := BuildDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Built || res.Bundle.Entry != "index.js" || len(res.Bundle.Files) != 2 {
		t.Fatalf("result = %+v", res)
	}
}

// TestBuildErrorClass: every way a build fails names the file, line and
// column, and says how to fix it.
func TestBuildErrorClass(t *testing.T) {
	for _, tc := range []struct {
		name, file, code string
		want             []string
	}{
		{"missing package", "src/index.ts", "import x from \"left-pad\";\nexport default { fetch() { return new Response(x) } }\n",
			[]string{"src/index.ts:1:15: Could not resolve \"left-pad\"", "npm install left-pad"}},
		{"missing scoped subpath", "src/index.ts", "import x from \"@acme/kit/sub\";\nexport default x;\n",
			[]string{"src/index.ts:1:15:", "npm install @acme/kit"}},
		{"missing relative module", "src/index.ts", "\n\nimport { y } from \"./nope\";\nexport default y;\n",
			[]string{"src/index.ts:3:19: Could not resolve \"./nope\"", "fix the import path"}},
		{"node builtin", "src/index.ts", "import fs from \"fs\";\nexport default fs;\n",
			[]string{"src/index.ts:1:16:", "without Node's built-in modules"}},
		{"syntax error", "src/index.ts", "export default {\n  async fetch(req: Request) {\n    return new Response(\"x\";\n  }\n};\n",
			[]string{"src/index.ts:3:28: Expected \")\" but found \";\""}},
		{"syntax error in an imported module", "src/greet.ts", "export function greet(name: string {}\n",
			[]string{"src/greet.ts:1:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := agentDir(t)
			write(t, dir, tc.file, tc.code)
			_, err := BuildDir(dir)
			if !errors.Is(err, ErrBuild) {
				t.Fatalf("err = %v, want ErrBuild", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if !strings.Contains(err.Error(), "; ") {
				t.Errorf("error gives no fix: %v", err)
			}
		})
	}
}

// TestBuildOutputSizeCap: a dependency that bundles into a module larger
// than MaxOutput is refused with the size and the fix; node_modules that
// are not imported cost nothing.
func TestBuildOutputSizeCap(t *testing.T) {
	dir := agentDir(t)
	big := "export const blob = \"" + strings.Repeat("x", 2<<20) + "\";\n"
	write(t, dir, "node_modules/huge/package.json", `{"name":"huge","version":"1.0.0","module":"index.js"}`)
	write(t, dir, "node_modules/huge/index.js", big)
	write(t, dir, "node_modules/unused/index.js", big+big) // not imported: not bundled
	if _, err := BuildDir(dir); err != nil {
		t.Fatalf("unused node_modules: %v", err)
	}
	write(t, dir, "src/index.ts", "import { blob } from \"huge\";\nexport default { fetch() { return new Response(blob.slice(0, 3)) } }\n")
	old := MaxOutput
	MaxOutput = 1 << 20
	t.Cleanup(func() { MaxOutput = old })
	_, err := BuildDir(dir)
	if !errors.Is(err, ErrOutputTooLarge) || !strings.Contains(err.Error(), "src/index.ts bundles into") || !strings.Contains(err.Error(), "the maximum is 1048576") || !strings.Contains(err.Error(), "import less") {
		t.Fatalf("err = %v, want ErrOutputTooLarge with the limit and a fix", err)
	}
}

// TestDaemonRefusesTypeScriptEntry: a bundle whose entry is TypeScript is
// refused by the strict loaders (what the daemon uses) with the fix.
func TestDaemonRefusesTypeScriptEntry(t *testing.T) {
	for _, entry := range []string{"src/index.ts", "index.tsx", "a.mts", "b.jsx"} {
		_, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"x","entry":"` + entry + `"}`), entry: []byte("export default {}")})
		if !errors.Is(err, bundle.ErrInvalidManifest) || !strings.Contains(err.Error(), "agentcloud deploy DIR") {
			t.Errorf("entry %s: err = %v", entry, err)
		}
	}
}

// BenchmarkBuildDir: building the TypeScript test agent with its npm
// dependency (what deploy, dev and test add before an upload).
func BenchmarkBuildDir(b *testing.B) {
	dir := b.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/tsagent")); err != nil {
		b.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "node_modules"), os.DirFS("testdata/npm")); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := BuildDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.OutputBytes), "out-bytes")
	}
}
