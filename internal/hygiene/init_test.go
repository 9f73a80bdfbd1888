package hygiene

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// initAllowed are the files that may declare func init(), with the reason.
var initAllowed = map[string]string{
	// A process-tier sandbox init is this binary re-executed; it must start
	// before heavy package initialisers run (docs/RATIONALE.md, "Why the
	// sandbox init starts from a package init").
	"internal/sandbox/process/sbinit/init.go": "sandbox init before heavy package inits",
}

// TestNoInitFunctions: parts are wired explicitly (New → Start → Close),
// never by init() side effects; test files included.
func TestNoInitFunctions(t *testing.T) {
	root := repoRoot(t)
	found := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(src), "func init(") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "init" {
				found[rel] = true
				if _, ok := initAllowed[rel]; !ok {
					t.Errorf("%s declares func init(): wire it explicitly instead (or add it to initAllowed with the reason, in docs/RATIONALE.md too)", rel)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range initAllowed {
		if !found[f] {
			t.Errorf("%s no longer declares func init(): delete it from initAllowed", f)
		}
	}
}
