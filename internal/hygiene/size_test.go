package hygiene

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// maxFileLines caps a non-test Go file; split by responsibility before it.
const maxFileLines = 800

// maxFuncLines caps a non-test function or method, declaration to closing
// brace (function literals count towards the function they are in).
const maxFuncLines = 100

// longFuncs are today's functions over maxFuncLines, keyed "dir Name" (a
// method as Type.Name). The list must shrink: a listed function that is now
// under the cap (or gone) fails the test until it is deleted here, and a new
// one over the cap fails it too.
var longFuncs = map[string]string{
	"internal/cli newModelsCmd":                             "one constructor for six subcommands: split per subcommand",
	"internal/config Config.LoadEnv":                        "one line per setting: table-drive it",
	"internal/config Config.Validate":                       "one check per setting: split by area as validateTLS is",
	"internal/toolbox/registry/registryhttp Handler.Routes": "the registry routes, moved whole from the daemon: one registration per route",
	"internal/config Gateway.validate":                      "one check per gateway setting: split by area",
	"internal/gateway/gatewaytest harness.phase":            "one flood phase: split setup, load and measurement",
	"internal/isolate addDispatch":                          "the host-call table: one case per host call",
	"internal/isolate callCtx.dispatch":                     "the host-call switch: one case per host call",
	"internal/sandbox/process box.Exec":                     "process start, cgroup and stream wiring in one place",
	"internal/sandbox/sandboxtest Conformance":              "one t.Run per contract clause: split into named subtests",
	"internal/sandbox/sandboxtest Hostile":                  "one t.Run per attack: split into named subtests",
	"internal/toolbox/registry converter.operationTool":     "OpenAPI operation → tool in one pass",
}

// span is a file's or function's length in lines.
type span struct {
	where string // file:line
	lines int
}

// sizes returns every non-test file and every function over the caps.
func sizes(t *testing.T) (files map[string]span, funcs map[string]span) {
	t.Helper()
	root := repoRoot(t)
	files, funcs = map[string]span{}, map[string]span{}
	for dir, paths := range packages(t) {
		for _, p := range paths {
			fs := token.NewFileSet()
			f, err := parser.ParseFile(fs, p, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			if n := fs.File(f.Pos()).LineCount(); n > maxFileLines {
				files[rel] = span{rel, n}
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				start, end := fs.Position(fd.Pos()), fs.Position(fd.End())
				if n := end.Line - start.Line + 1; n > maxFuncLines {
					funcs[dir+" "+funcName(fd)] = span{fmt.Sprintf("%s:%d", rel, start.Line), n}
				}
			}
		}
	}
	return files, funcs
}

// funcName is Name, or Type.Name for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// TestFileAndFunctionSizes: no non-test file over maxFileLines; no function
// over maxFuncLines but the listed ones, each still over it.
func TestFileAndFunctionSizes(t *testing.T) {
	files, funcs := sizes(t)
	for _, s := range files {
		t.Errorf("%s has %d lines (cap %d): split it by responsibility", s.where, s.lines, maxFileLines)
	}
	for key := range longFuncs {
		if _, ok := funcs[key]; !ok {
			t.Errorf("%s is now at most %d lines (or gone): delete it from longFuncs in size_test.go", key, maxFuncLines)
		}
	}
	keys := make([]string, 0, len(funcs))
	for k := range funcs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, listed := longFuncs[k]; !listed {
			t.Errorf("%s (%s) has %d lines (cap %d): split it", k, funcs[k].where, funcs[k].lines, maxFuncLines)
		}
	}
}

// maxDaemonLines caps the non-test Go of internal/daemon, the composition
// root: it builds the parts and hands them to each other (about 1–1.7k
// lines of wiring). Product logic — handlers, formats, policies,
// adapters that decide anything — belongs in the package that owns the
// capability; once the daemon is over this cap, move some out rather than
// raising it.
const maxDaemonLines = 1750

// TestDaemonStaysWiring: internal/daemon stays under maxDaemonLines.
func TestDaemonStaysWiring(t *testing.T) {
	total := 0
	var biggest span
	for _, p := range packages(t)["internal/daemon"] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n := bytes.Count(b, []byte("\n"))
		total += n
		if n > biggest.lines {
			biggest = span{filepath.Base(p), n}
		}
	}
	if total == 0 {
		t.Fatal("internal/daemon not found: the check is out of date")
	}
	if total > maxDaemonLines {
		t.Errorf("internal/daemon has %d non-test lines (cap %d; the largest file is %s with %d): it is the composition root; "+
			"move handlers, formats and adapters with logic to the package that owns the capability", total, maxDaemonLines, biggest.where, biggest.lines)
	}
}
