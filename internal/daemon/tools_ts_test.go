package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/testdeps"
)

// TestMCPWithTypeScriptSDK drives /mcp with the official MCP TypeScript
// SDK (npm @modelcontextprotocol/sdk, pinned in testdata/mcpts): connect
// over Streamable HTTP with a bearer token, list tools, state_put and
// state_get, run_code (JavaScript, when sandboxes run here), a structured
// error for a bad call and a protocol error for an unknown tool.
func TestMCPWithTypeScriptSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testdeps.Missing(t, "node is not installed (scripts/deps.sh installs nodejs and npm)")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "mcpts"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		// Only from the local npm cache: tests talk to loopback only.
		npm, lerr := exec.LookPath("npm")
		if lerr != nil {
			testdeps.Missing(t, "npm is not installed (scripts/deps.sh installs nodejs and npm)")
		}
		cmd := exec.Command(npm, "ci", "--offline", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			testdeps.Missing(t, "the MCP TypeScript SDK is not installed in %s and not in the npm cache; run scripts/deps.sh (npm ci there): %v\n%s", dir, err, out)
		}
	}
	d, c := startDaemon(t)
	deployCounter(t, c)
	runCode := "0"
	if process.Available() == nil {
		runCode = "1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", "http://"+d.Addr()+"/mcp", adminToken(t, d.DataDir()), runCode)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr.String())
	}
	type result struct {
		IsError           bool `json:"isError"`
		StructuredContent map[string]any
		Content           []struct{ Text string }
	}
	var got struct {
		Server  string
		Tools   []string
		Put     result
		Get     result
		Run     *result
		Bad     result
		Unknown string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node output %q: %v", out, err)
	}
	if got.Server != "agentcloud" || !slices.IsSorted(got.Tools) || !slices.Contains(got.Tools, "run_code") {
		t.Errorf("server %q, tools %v", got.Server, got.Tools)
	}
	if got.Put.IsError || got.Get.IsError || got.Get.StructuredContent["value"] != float64(99) {
		t.Errorf("state_put/state_get: %+v %+v", got.Put, got.Get)
	}
	if runCode == "1" {
		if got.Run == nil || got.Run.IsError || got.Run.StructuredContent["stdout"] != "42\n" {
			t.Errorf("run_code javascript: %+v", got.Run)
		}
	}
	e, _ := got.Bad.StructuredContent["error"].(map[string]any)
	if !got.Bad.IsError || e["code"] != "invalid_arguments" || !strings.Contains(e["message"].(string), "language") {
		t.Errorf("bad call: %+v", got.Bad)
	}
	if !strings.Contains(got.Unknown, "unknown tool") {
		t.Errorf("unknown tool: %q", got.Unknown)
	}
	if got, err := callCounter(c, "ts1"); err != nil || got.Stored != 100 {
		t.Errorf("the session after the TypeScript client's state_put: %+v %v", got, err)
	}
}
