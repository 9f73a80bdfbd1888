package security

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsStayBelowTheHTTPLayer keeps the security core free of the
// packages above it: the router (its HTTP surface is securityhttp), the
// daemon that wires it and the CLI. A decision that needs one of them
// belongs in securityhttp or the daemon.
func TestImportsStayBelowTheHTTPLayer(t *testing.T) {
	forbidden := []string{
		"github.com/agentcloud/agentcloud/internal/httpapi",
		"github.com/agentcloud/agentcloud/internal/daemon",
		"github.com/agentcloud/agentcloud/internal/cli",
		"github.com/agentcloud/agentcloud/internal/security/securityhttp",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
