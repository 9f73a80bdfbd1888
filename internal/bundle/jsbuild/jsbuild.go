// Package jsbuild turns an agent's source directory into the bundle the CLI
// uploads: when the manifest's entry is TypeScript or JSX, or the directory
// has a package.json, the entry and everything it imports (relative
// modules, npm packages from node_modules) are bundled with esbuild's Go API
// into one ES module with an external source map, as wrangler does for a
// Worker. The agent's own files (node_modules left out) stay in the bundle
// beside the build output, and the uploaded manifest's entry names the
// built module.
//
// It does not validate the manifest beyond what internal/bundle does, run
// the result, or type-check TypeScript (esbuild strips types; `agentcloud
// types` writes declarations for editors and tsc). The daemon never builds:
// it refuses a TypeScript entry (see docs/RATIONALE.md).
package jsbuild

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/evanw/esbuild/pkg/api"
)

// OutDir is the bundle directory the build writes into. Files under it in
// the source directory are left out of the bundle: they are build output.
const OutDir = ".agentcloud"

// MaxOutput is the largest built module, in bytes: it is parsed and held by
// every isolate that runs the agent, so it is far below the bundle's own
// size limit. A variable so tests can lower it.
var MaxOutput = 8 << 20

// ErrBuild: the build failed; the error text lists each problem as
// "FILE:LINE:COL: problem; fix".
var ErrBuild = errors.New("build failed")

// ErrOutputTooLarge: the built module is larger than MaxOutput.
var ErrOutputTooLarge = errors.New("built module too large")

// NeedsBuild reports whether the source bundle b must be built before it is
// uploaded: a TypeScript or JSX entry, TypeScript tests (tests/*.test.ts),
// or a package.json at its root (npm dependencies to bundle). A wasm agent
// never is.
func NeedsBuild(b *bundle.Bundle) bool {
	if b.Runtime != bundle.RuntimeJS {
		return false
	}
	_, npm := b.Files["package.json"]
	return npm || bundle.IsSourceEntry(b.Entry) || len(tsTests(b)) > 0
}

// tsTests are b's TypeScript test files, tests/*.test.ts: each is bundled
// into tests/*.test.js, which the deploy pipeline's test stage runs.
func tsTests(b *bundle.Bundle) []string {
	var out []string
	for _, p := range b.Paths() {
		if path.Dir(p) == "tests" && strings.HasSuffix(p, ".test.ts") {
			out = append(out, p)
		}
	}
	return out
}

// Result is a built bundle.
type Result struct {
	Bundle *bundle.Bundle
	// Built is false when the directory needed no build (Bundle is then
	// the directory as it is).
	Built bool
	// Entry is the built module's path in Bundle ("" when not Built),
	// and OutputBytes its size.
	Entry       string
	OutputBytes int
}

// BuildDir loads the agent directory dir and, if it needs a build
// (NeedsBuild), bundles its entry. Manifest problems come back as
// bundle.LoadDir reports them; build problems wrap ErrBuild or
// ErrOutputTooLarge and name the file, line and column, and the fix.
func BuildDir(dir string) (*Result, error) {
	src, err := bundle.LoadSourceDir(dir)
	if err != nil {
		return nil, err
	}
	if !NeedsBuild(src) {
		if bundle.IsSourceEntry(src.Entry) { // a wasm runtime with a .ts entry: let the strict loader say why
			_, err := bundle.LoadDir(dir)
			return nil, err
		}
		return &Result{Bundle: src}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	entry := path.Join(OutDir, strings.TrimSuffix(src.Entry, path.Ext(src.Entry))+".js")
	eps := []api.EntryPoint{{InputPath: "./" + src.Entry, OutputPath: strings.TrimSuffix(entry, ".js")}}
	for _, p := range tsTests(src) {
		js := strings.TrimSuffix(p, ".ts") + ".js"
		if _, ok := src.Files[js]; ok {
			return nil, fmt.Errorf("build %s: %w: %s and %s both exist; keep one of them (the .ts one is built into the .js one)", dir, ErrBuild, p, js)
		}
		eps = append(eps, api.EntryPoint{InputPath: "./" + p, OutputPath: strings.TrimSuffix(js, ".js")})
	}
	res := api.Build(api.BuildOptions{
		EntryPointsAdvanced: eps,
		AbsWorkingDir:       abs,
		Outdir:              abs,
		Bundle:              true,
		Write:               false,
		Format:              api.FormatESModule,
		Platform:            api.PlatformNeutral,
		Target:              api.ES2022,
		Conditions:          []string{"workerd", "worker", "browser", "import", "default"},
		MainFields:          []string{"browser", "module", "main"},
		Sourcemap:           api.SourceMapLinked,
		SourcesContent:      api.SourcesContentExclude,
		LogLevel:            api.LogLevelSilent,
		LogLimit:            20,
	})
	if len(res.Errors) > 0 {
		return nil, buildError(dir, res.Errors)
	}
	files := map[string][]byte{}
	for p, c := range src.Files {
		if p != OutDir && !strings.HasPrefix(p, OutDir+"/") {
			files[p] = c
		}
	}
	out := 0
	for _, f := range res.OutputFiles {
		rel, err := filepath.Rel(abs, f.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("build %s: esbuild wrote %s outside the directory", dir, f.Path)
		}
		rel = filepath.ToSlash(rel)
		if rel == entry {
			out = len(f.Contents)
		}
		if strings.HasSuffix(rel, ".js") && len(f.Contents) > MaxOutput {
			from := src.Entry
			if rel != entry {
				from = strings.TrimSuffix(rel, ".js") + ".ts"
			}
			return nil, fmt.Errorf("build %s: %w: %s bundles into %d bytes, the maximum is %d; import less (a smaller package, or one module of it instead of its index), or move data out of the code into a file of the bundle",
				dir, ErrOutputTooLarge, from, len(f.Contents), MaxOutput)
		}
		files[rel] = f.Contents
	}
	if _, ok := files[entry]; !ok {
		return nil, fmt.Errorf("build %s: esbuild wrote no %s (got %s)", dir, entry, strings.Join(slices.Sorted(maps.Keys(files)), ", "))
	}
	man := src.Manifest
	man.Entry = entry
	mj, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	files[bundle.ManifestName] = append(mj, '\n')
	b, err := bundle.FromFiles(files)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	return &Result{Bundle: b, Built: true, Entry: entry, OutputBytes: out}, nil
}

// buildError turns esbuild's messages into one error, a line per problem:
// "FILE:LINE:COL: problem; fix".
func buildError(dir string, msgs []api.Message) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d problem", len(msgs))
	if len(msgs) != 1 {
		b.WriteString("s")
	}
	b.WriteString(":")
	for _, m := range msgs {
		b.WriteString("\n  ")
		if l := m.Location; l != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", filepath.ToSlash(l.File), l.Line, l.Column+1)
		}
		b.WriteString(m.Text)
		b.WriteString("; ")
		b.WriteString(fix(m))
	}
	return fmt.Errorf("build %s: %w: %s", dir, ErrBuild, b.String())
}

// fix says how to put one esbuild problem right.
func fix(m api.Message) string {
	if name, ok := strings.CutPrefix(m.Text, `Could not resolve "`); ok {
		name = strings.TrimSuffix(name, `"`)
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "/") {
			return "fix the import path (relative to the importing file), or add the missing file"
		}
		if strings.HasPrefix(name, "node:") || isNodeBuiltin(name) {
			return "agents run in a Workers-style runtime without Node's built-in modules; use a web API (fetch, crypto.subtle, TextEncoder) or a package that does"
		}
		return fmt.Sprintf("install it in the agent directory (npm install %s) so node_modules has it, or fix the package name", pkgName(name))
	}
	if m.Location != nil && m.Location.Suggestion != "" {
		return fmt.Sprintf("write %q there", m.Location.Suggestion)
	}
	for _, n := range m.Notes {
		if n.Text != "" {
			return strings.TrimSuffix(n.Text, ".")
		}
	}
	return "fix the code at that place"
}

// pkgName is the npm package of an import specifier ("@scope/pkg/sub" →
// "@scope/pkg").
func pkgName(spec string) string {
	parts := strings.SplitN(spec, "/", 3)
	if strings.HasPrefix(spec, "@") && len(parts) >= 2 {
		return parts[0] + "/" + parts[1]
	}
	return parts[0]
}

func isNodeBuiltin(name string) bool {
	switch pkgName(name) {
	case "fs", "path", "os", "child_process", "net", "http", "https", "crypto", "stream", "buffer", "util", "events", "url", "zlib", "tls", "dns", "worker_threads":
		return true
	}
	return false
}
