package hygiene

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// slogMethods are the *slog.Logger methods that take key-value pairs after
// the message (Log and LogAttrs after the context, level and message).
var slogMethods = map[string]int{
	"Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2,
	"Log": 3, "With": 0,
}

// slogReserved are the keys slog's handlers write themselves: an attribute
// of the same name makes a JSON line with two "level" (or "msg") keys,
// which log pipelines read as the last one, or reject.
var slogReserved = map[string]bool{"time": true, "level": true, "msg": true, "source": true}

// TestSlogReservedKeysClass: no log call passes "time", "level", "msg" or
// "source" as an attribute key (the agent console lines once did: issue 17).
func TestSlogReservedKeysClass(t *testing.T) {
	for _, files := range packages(t) {
		for _, f := range files {
			fset := token.NewFileSet()
			af, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(af, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				first, ok := slogMethods[sel.Sel.Name]
				if !ok {
					return true
				}
				for i := first; i < len(call.Args); i += 2 {
					lit, ok := call.Args[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue // an slog.Attr, or not a literal: stop pairing here
					}
					if k, _ := strconv.Unquote(lit.Value); slogReserved[k] {
						t.Errorf("%s: log attribute key %q repeats slog's own key; name it for what it is (e.g. \"console\", \"text\")", fset.Position(lit.Pos()), k)
					}
				}
				return true
			})
		}
	}
}
