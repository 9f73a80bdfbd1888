package hygiene

import (
	"fmt"
	"go/parser"
	"go/token"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The layer rules, as data. Paths are relative to the module root. Data
// flows down the floors: cmd → cli → daemon (the one composition root) →
// HTTP surfaces (*http packages) → domain packages → store, api.

// cmdImports is everything cmd/agentcloud may import from the module: the
// CLI, and the process tier for its sandbox init (this binary re-executed).
var cmdImports = []string{"internal/cli", "internal/sandbox/process"}

// cliImports is everything internal/cli may import from the module: it
// talks to daemons through client/, starts one for `serve`, and leaves
// benchmarks to internal/bench.
var cliImports = []string{
	"api", "client", "internal/config", "internal/daemon", "internal/version", "internal/bench",
	"internal/bundle",         // packs an agent directory into the tar.gz it uploads
	"internal/bundle/jsbuild", // bundles TypeScript and npm dependencies before upload
}

// daemonImporters are the only packages that may import internal/daemon.
var daemonImporters = []string{"cmd/agentcloud", "internal/cli", "internal/bench"}

// notDomain are the packages above the domain floor: the composition root,
// its consumers, and the test-only packages.
var notDomain = []string{"cmd/agentcloud", "internal/cli", "internal/bench", "internal/daemon", "internal/doctest", "internal/hygiene"}

// forbiddenInDomain are what a domain package must never import.
var forbiddenInDomain = []string{"internal/daemon", "internal/cli", "internal/bench", "internal/httpapi"}

// mayImportHTTPAPI reports whether a package may import internal/httpapi:
// the router itself, an HTTP surface (<capability>http, e.g.
// internal/sandbox/sandboxhttp), or the gateway.
func mayImportHTTPAPI(dir string) bool {
	return dir == "internal/httpapi" || strings.HasSuffix(path.Base(dir), "http") || dir == "internal/gateway"
}

// maxInternalImports is how many internal/ packages one package may import;
// only the composition root (internal/daemon) may import more.
const maxInternalImports = 8

// layerExceptions are the breaches of the rules above that are meant, each
// with its reason. The list must shrink: an entry whose import is gone
// fails the test until it is deleted here.
var layerExceptions = map[string][]string{
	// Security is the one policy decision point: it decides for every
	// capability (sessions, tools, models, sandboxes, approvals, secrets,
	// the egress proxy), so it names their request types (12 packages, all
	// below it; none imports it back). Splitting it per capability would
	// spread the Cedar entity model over several packages (RATIONALE).
	"internal/security": {"(many)"},
	// The benchmarks sit above the daemon (they start one) and measure
	// parts alone beside it (the ledger, the gateway, policy, the store),
	// so they are a composition root for measurement; nothing imports them
	// but the CLI's thin bench commands.
	"internal/bench": {"(many)"},
}

// moduleImports maps each package directory with non-test Go files to the
// module packages those files import (module-relative, sorted, unique).
func moduleImports(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for dir, files := range packages(t) {
		seen := map[string]bool{}
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if rel, ok := strings.CutPrefix(p, module+"/"); ok {
					seen[rel] = true
				}
			}
		}
		out[dir] = sortedKeys(seen)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// layerViolations applies the rules to imports and returns every breach as
// "dir imports imp: why", keyed by "dir imp".
func layerViolations(imports map[string][]string) map[string]string {
	v := map[string]string{}
	add := func(dir, imp, why string) { v[dir+" "+imp] = fmt.Sprintf("%s imports %s: %s", dir, imp, why) }
	for dir, imps := range imports {
		internal := 0
		for _, imp := range imps {
			if strings.HasPrefix(imp, "internal/") {
				internal++
			}
			switch {
			case dir == "cmd/agentcloud" && !slices.Contains(cmdImports, imp):
				add(dir, imp, "the main package imports only "+strings.Join(cmdImports, ", "))
			case dir == "internal/cli" && !slices.Contains(cliImports, imp):
				add(dir, imp, "the CLI imports only "+strings.Join(cliImports, ", ")+" (it talks to daemons through client/)")
			case imp == "internal/daemon" && !slices.Contains(daemonImporters, dir):
				add(dir, imp, "only "+strings.Join(daemonImporters, ", ")+" may import the composition root")
			case !slices.Contains(notDomain, dir) && slices.Contains(forbiddenInDomain, imp) && !(imp == "internal/httpapi" && mayImportHTTPAPI(dir)):
				add(dir, imp, "a domain package never imports daemon, cli, bench or httpapi (HTTP handlers go to a <capability>http package; what it needs from above, it declares as a small interface)")
			}
		}
		if internal > maxInternalImports && dir != "internal/daemon" {
			add(dir, "(many)", fmt.Sprintf("%d internal packages; only internal/daemon, the composition root, may import more than %d", internal, maxInternalImports))
		}
	}
	return v
}

// TestLayerRules: the import rules above hold for every package, apart
// from the listed exceptions, and every exception is still needed.
func TestLayerRules(t *testing.T) {
	imports := moduleImports(t)
	for _, want := range []string{"cmd/agentcloud", "internal/cli", "internal/daemon"} {
		if _, ok := imports[want]; !ok {
			t.Fatalf("package %s not found: the rules are out of date", want)
		}
	}
	v := layerViolations(imports)
	for dir, imps := range layerExceptions {
		for _, imp := range imps {
			key := dir + " " + imp
			if _, ok := v[key]; !ok {
				t.Errorf("%s no longer imports %s (or may now): delete it from layerExceptions in imports_test.go", dir, imp)
			}
			delete(v, key)
		}
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Error(v[k])
	}
}

// TestLayerRulesCatch: the rules catch each kind of breach (so a typo in
// the tables cannot turn them off silently).
func TestLayerRulesCatch(t *testing.T) {
	many := []string{}
	for i := range maxInternalImports + 1 {
		many = append(many, "internal/p"+strconv.Itoa(i))
	}
	for _, tc := range []struct {
		dir  string
		imps []string
		key  string // "" = no breach
	}{
		{"cmd/agentcloud", []string{"internal/cli", "internal/sandbox/process"}, ""},
		{"cmd/agentcloud", []string{"internal/daemon"}, "cmd/agentcloud internal/daemon"},
		{"internal/cli", []string{"internal/session"}, "internal/cli internal/session"},
		{"internal/cli", []string{"internal/daemon", "client"}, ""},
		{"internal/session", []string{"internal/daemon"}, "internal/session internal/daemon"},
		{"internal/session", []string{"internal/httpapi"}, "internal/session internal/httpapi"},
		{"internal/session/sessionhttp", []string{"internal/httpapi"}, ""},
		{"internal/security", []string{"internal/cli"}, "internal/security internal/cli"},
		{"internal/security/securityhttp", []string{"internal/daemon"}, "internal/security/securityhttp internal/daemon"},
		{"internal/toolbox", []string{"internal/bench"}, "internal/toolbox internal/bench"},
		{"internal/toolbox", many, "internal/toolbox (many)"},
		{"internal/daemon", many, ""},
	} {
		v := layerViolations(map[string][]string{tc.dir: tc.imps})
		if _, ok := v[tc.key]; (tc.key == "") != (len(v) == 0) || tc.key != "" && !ok {
			t.Errorf("%s importing %v: breaches %v, want %q", tc.dir, tc.imps, v, tc.key)
		}
	}
}
