package doctest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// sdkRoute is one operation of the OpenAPI document.
type sdkRoute struct{ id, method, path, tag string }

// sdkRoutes reads every operation of testdata/openapi.json, sorted by id.
func sdkRoutes(t *testing.T) []sdkRoute {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var out []sdkRoute
	for path, ops := range doc.Paths {
		if strings.HasPrefix(path, "/e2b/") {
			continue // E2B's API, for E2B's own SDKs (X-API-Key auth, its error format)
		}
		for method, op := range ops {
			if op.OperationID == "" {
				t.Fatalf("%s %s has no operationId", method, path)
			}
			tag := ""
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			out = append(out, sdkRoute{op.OperationID, strings.ToUpper(method), path, tag})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

const sdkGenerated = "Code generated from internal/doctest/testdata/openapi.json by internal/doctest TestSDKRoutesGolden; DO NOT EDIT."

// sdkRouteFiles renders the route tables of the Python and TypeScript SDKs.
func sdkRouteFiles(routes []sdkRoute) map[string][]byte {
	var py, ts bytes.Buffer
	fmt.Fprintf(&py, "# %s\n\"\"\"Every route of the daemon: operationId -> (method, path, tag).\"\"\"\n\nROUTES = {\n", sdkGenerated)
	fmt.Fprintf(&ts, "// %s\n\n/** Every route of the daemon: operationId -> [method, path, tag]. */\nexport const ROUTES = {\n", sdkGenerated)
	for _, r := range routes {
		fmt.Fprintf(&py, "    %q: (%q, %q, %q),\n", r.id, r.method, r.path, r.tag)
		fmt.Fprintf(&ts, "  %q: [%q, %q, %q],\n", r.id, r.method, r.path, r.tag)
	}
	py.WriteString("}\n")
	ts.WriteString("} as const;\n\n/** The operationId of a route. */\nexport type OperationId = keyof typeof ROUTES;\n")
	return map[string][]byte{
		filepath.Join("sdk", "python", "agentcloud", "_routes.py"): py.Bytes(),
		filepath.Join("sdk", "typescript", "src", "routes.ts"):     ts.Bytes(),
	}
}

// TestSDKRoutesGolden: the SDKs' route tables are generated from the
// OpenAPI document, so a route the daemon serves is in both clients; a
// new, renamed or removed route fails here until `go test
// ./internal/doctest -run TestSDKRoutesGolden -update` regenerates them.
func TestSDKRoutesGolden(t *testing.T) {
	root := repoRoot(t)
	for rel, want := range sdkRouteFiles(sdkRoutes(t)) {
		path := filepath.Join(root, rel)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (generate it with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with testdata/openapi.json: run go test ./internal/doctest -run TestSDKRoutesGolden -update", rel)
		}
	}
}

// startDaemon starts a daemon in this process (no warm sandbox pool) and
// returns its URL and admin token; it is shut down when t ends.
func startDaemon(t *testing.T) (string, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", 0
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	tok, err := os.ReadFile(filepath.Join(cfg.Data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + d.Addr(), strings.TrimSpace(string(tok))
}

// debianPython is Debian's python3, whose python3-pytest scripts/deps.sh
// installs (a python3 earlier on PATH may be another installation).
func debianPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import pytest").Run() == nil {
			return p
		}
	}
	t.Skip("no python3 with pytest: run scripts/deps.sh (apt-get install python3-pytest)")
	return ""
}

// TestPythonSDK runs the Python SDK's pytest suite against a live daemon.
func TestPythonSDK(t *testing.T) {
	py := debianPython(t)
	url, token := startDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := filepath.Join(repoRoot(t), "sdk", "python")
	cmd := exec.CommandContext(ctx, py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
	cmd.Dir = dir
	cmd.Env = cleanEnv("AGENTCLOUD_URL="+url, "AGENTCLOUD_TOKEN="+token, "PYTHONPATH="+dir, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pytest: %v\n%s", err, out)
	}
	t.Logf("%s", lastLines(string(out), 3))
}

// TestTypeScriptSDK builds the TypeScript SDK with its pinned compiler
// (sdk/typescript/package-lock.json, installed by scripts/deps.sh) and runs
// its node:test suite against a live daemon.
func TestTypeScriptSDK(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "sdk", "typescript")
	tsc := filepath.Join(dir, "node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Skip("the TypeScript compiler is not installed: run scripts/deps.sh (npm ci in sdk/typescript)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	url, token := startDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := t.TempDir()
	build := exec.CommandContext(ctx, tsc, "-p", ".", "--outDir", out)
	build.Dir = dir
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	run := exec.CommandContext(ctx, "node", "--test", filepath.Join(out, "test"))
	run.Dir = dir
	run.Env = cleanEnv("AGENTCLOUD_URL="+url, "AGENTCLOUD_TOKEN="+token)
	b, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, b)
	}
	t.Logf("%s", lastLines(string(b), 8))
}
