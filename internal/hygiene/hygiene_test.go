package hygiene

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/agentcloud/agentcloud"

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repo root not found from %s", dir)
	}
	return dir
}

// packages maps each directory holding non-test Go files to those files.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	root := repoRoot(t)
	pkgs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			pkgs[rel] = append(pkgs[rel], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestEveryPackageHasDoc(t *testing.T) {
	for dir, files := range packages(t) {
		found := false
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ParseComments|parser.PackageClauseOnly)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil {
				text := af.Doc.Text()
				if strings.HasPrefix(text, "Package "+af.Name.Name+" ") || strings.HasPrefix(text, "Command ") {
					found = true
					break
				}
			}
		}
		if !found {
			t.Errorf("package %s has no doc comment (// Package name ... or // Command name ...)", dir)
		}
	}
}

func TestAPIAndClientImportOnlyStdlib(t *testing.T) {
	allowed := map[string]map[string]bool{
		"api":    {},
		"client": {module + "/api": true},
	}
	pkgs := packages(t)
	for dir, extra := range allowed {
		if len(pkgs[dir]) == 0 {
			t.Fatalf("package %s not found", dir)
		}
		root := repoRoot(t)
		matches, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		for _, f := range matches { // test files too: they ship with the package
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				first := strings.Split(p, "/")[0]
				if extra[p] || !strings.Contains(first, ".") {
					continue
				}
				t.Errorf("%s imports %s: api/ and client/ may import only the standard library (client/ also api/)", f, p)
			}
		}
	}
}
