package hygiene

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// httpSurfaces may import internal/httpapi besides the <capability>http
// packages: the router itself, the daemon that wires it and the CLI.
var httpSurfaces = map[string]bool{
	"internal/httpapi": true,
	"internal/daemon":  true,
	"internal/cli":     true,
}

// TestDomainPackagesDoNotImportHTTPAPI: one rule for HTTP surfaces. Routes
// live in a package named <capability>http (sandboxhttp, sessionhttp,
// modelgwhttp, ...); a domain package (session, modelgw, the toolbox, the
// isolate, ...) never imports internal/httpapi, so what it needs from the
// router (a principal, an authorizer) it declares itself.
func TestDomainPackagesDoNotImportHTTPAPI(t *testing.T) {
	const httpapi = module + "/internal/httpapi"
	for dir, files := range packages(t) {
		dir = filepath.ToSlash(dir)
		if !strings.HasPrefix(dir, "internal/") || httpSurfaces[dir] || strings.HasSuffix(dir, "http") {
			continue
		}
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); p == httpapi {
					t.Errorf("%s imports %s: move its routes to a <capability>http package and declare what it needs from the router in %s", f, p, dir)
				}
			}
		}
	}
}

// TestClockConvention: one clock convention. A component that lets tests
// set the time takes a `Now func() time.Time` field in its config (nil:
// time.Now), never a one-method Clock interface or a differently named
// clock field. (A clock that also runs timers, for code that schedules, is
// more than a time source and may be an interface.)
func TestClockConvention(t *testing.T) {
	for _, files := range packages(t) {
		for _, f := range files {
			fset := token.NewFileSet()
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(af, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.TypeSpec:
					if it, ok := n.Type.(*ast.InterfaceType); ok && onlyNow(it) {
						t.Errorf("%s: interface %s: take a Now func() time.Time field instead", fset.Position(n.Pos()), n.Name.Name)
					}
				case *ast.StructType:
					for _, fl := range n.Fields.List {
						if !isNowFunc(fl.Type) {
							continue
						}
						for _, name := range fl.Names {
							if name.IsExported() && name.Name != "Now" {
								t.Errorf("%s: clock field %s: name it Now", fset.Position(name.Pos()), name.Name)
							}
						}
					}
				}
				return true
			})
		}
	}
}

// isNowFunc reports whether e is the type func() time.Time.
func isNowFunc(e ast.Expr) bool {
	ft, ok := e.(*ast.FuncType)
	if !ok || (ft.Params != nil && len(ft.Params.List) > 0) || ft.Results == nil || len(ft.Results.List) != 1 {
		return false
	}
	sel, ok := ft.Results.List[0].Type.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "time" && sel.Sel.Name == "Time"
}

// onlyNow reports whether it declares exactly one method, Now, returning
// time.Time: a time source that should be a func.
func onlyNow(it *ast.InterfaceType) bool {
	if len(it.Methods.List) != 1 {
		return false
	}
	m := it.Methods.List[0]
	return len(m.Names) == 1 && m.Names[0].Name == "Now" && isNowFunc(m.Type)
}
