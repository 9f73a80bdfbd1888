package hygiene

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEgressCallerIsTheOnlyContract: what an outbound request is for
// travels in its egress.Caller (purpose, egress list, owner, secrets,
// timeout), never in context keys. No file outside internal/egress that
// uses the egress package (tests included) puts a value into a context or
// reads one back by key, and internal/egress itself keeps to one
// unexported key (the private grant, carried through net/http to its
// dialer).
func TestEgressCallerIsTheOnlyContract(t *testing.T) {
	const egressPkg = module + "/internal/egress"
	root := repoRoot(t)
	egressKeys := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		fset := token.NewFileSet()
		af, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		inEgress := filepath.ToSlash(filepath.Dir(rel)) == "internal/egress"
		if inEgress {
			if !strings.HasSuffix(rel, "_test.go") {
				for _, k := range contextKeys(af) {
					egressKeys[k] = true
				}
			}
			return nil
		}
		if !importsPath(af, egressPkg) {
			return nil
		}
		ast.Inspect(af, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if what := contextKeyUse(call); what != "" {
					t.Errorf("%s: %s in a file that uses internal/egress: put what the request is for into its egress.Caller instead of a context key",
						fset.Position(call.Pos()), what)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(egressKeys) > 1 {
		t.Errorf("internal/egress uses %d context keys %v: keep to one (the caller's request data belongs in egress.Caller)", len(egressKeys), egressKeys)
	}
}

func importsPath(af *ast.File, path string) bool {
	for _, imp := range af.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			return true
		}
	}
	return false
}

// contextKeyUse names a call that stores or reads a context value by key:
// context.WithValue(ctx, k, v) or x.Value(k) with a key-like argument (a
// composite literal such as fooKey{} or a name ending in Key).
func contextKeyUse(call *ast.CallExpr) string {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if id, ok := sel.X.(*ast.Ident); ok && id.Name == "context" && sel.Sel.Name == "WithValue" {
		return "context.WithValue"
	}
	if sel.Sel.Name == "Value" && len(call.Args) == 1 && keyLike(call.Args[0]) {
		return "a context value read by key"
	}
	return ""
}

func keyLike(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.CompositeLit:
		return true
	case *ast.Ident:
		return strings.HasSuffix(strings.ToLower(e.Name), "key")
	}
	return false
}

// contextKeys lists the key expressions of the context.WithValue calls in
// af, as written.
func contextKeys(af *ast.File) []string {
	var out []string
	ast.Inspect(af, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || contextKeyUse(call) != "context.WithValue" || len(call.Args) != 3 {
			return true
		}
		switch k := call.Args[1].(type) {
		case *ast.CompositeLit:
			if id, ok := k.Type.(*ast.Ident); ok {
				out = append(out, id.Name)
			}
		case *ast.Ident:
			out = append(out, k.Name)
		}
		return true
	})
	return out
}
