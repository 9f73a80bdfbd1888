package cli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite testdata/help/*.txt and testdata/json/*.json from what the CLI prints")

// golden compares got with the file at path, or writes it with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("%s differs from what the CLI prints (review, then accept with go test ./internal/cli -run %s -update):\n--- want\n%s\n--- got\n%s",
			path, strings.Split(t.Name(), "/")[0], want, got)
	}
}

// staleGoldens fails for files in dir that no case wrote or compared.
func staleGoldens(t *testing.T, dir string, used map[string]bool) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if used[p] {
			continue
		}
		if *update {
			os.Remove(p)
			continue
		}
		t.Errorf("%s belongs to no command any more: delete it (or run with -update)", p)
	}
}

// commandPaths lists every visible command below root as argument lists,
// including cobra's help and completion commands.
func commandPaths(root *cobra.Command) [][]string {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, sub := range c.Commands() {
			if !sub.Hidden {
				walk(sub, append(slices.Clone(path), sub.Name()))
			}
		}
	}
	walk(root, nil)
	return out
}

// TestHelpGolden keeps the --help text of every command in
// testdata/help/<command path>.txt, so every change of a command's words,
// flags or defaults shows in review. The node ID default (the host name)
// is masked.
func TestHelpGolden(t *testing.T) {
	clearClientEnv(t)
	host := config.Default().NodeID
	used := map[string]bool{}
	for _, path := range commandPaths(newRoot(&globals{stdout: io.Discard, stderr: io.Discard})) {
		name := strings.Join(append([]string{"agentcloud"}, path...), "_")
		file := filepath.Join("testdata", "help", name+".txt")
		used[file] = true
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append(slices.Clone(path), "--help")...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			golden(t, file, strings.ReplaceAll(out, `(default "`+host+`")`, `(default "HOSTNAME")`))
		})
	}
	staleGoldens(t, filepath.Join("testdata", "help"), used)
}

// goldenAgent is deployed by TestJSONOutputGolden; its digest is fixed.
var goldenAgent = map[string]string{
	"agent.json": `{"name":"hello","entry":"index.js","limits":{"idle_seconds":3600}}`,
	"index.js":   `export default { fetch(request, env) { return new Response("hello from " + env.session.id); } };`,
}

// trafficMask are the front door's counters and gauges, which depend on
// the scenario's timing.
var trafficMask = []string{"concurrency_limit", "nominal_seats", "lendable_seats", "executing", "borrowed", "queued", "active_flows",
	"dispatched", "waited", "rejected", "timed_out", "wait_p50_ms", "wait_p99_ms", "queue", "rate_per_second", "total"}

// jsonStep is one command of TestJSONOutputGolden.
type jsonStep struct {
	name string
	args []string
	mask []string // keys whose scalar values vary between runs; "-key": drop its lines (present or not by timing)
	root bool     // needs root (sandboxes)
}

var timeRE = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"`)

// maskJSON replaces times anywhere, and the scalar values of keys, with
// placeholders, keeping the CLI's own field order and indentation.
func maskJSON(out string, keys []string) string {
	out = timeRE.ReplaceAllString(out, `"<time>"`)
	for _, k := range keys {
		if drop, ok := strings.CutPrefix(k, "-"); ok {
			re := regexp.MustCompile(`(?m)^\s*"` + regexp.QuoteMeta(drop) + `": ("[^"]*"|-?[0-9.eE+-]+|true|false|null),?\n`)
			out = re.ReplaceAllString(out, "")
			continue
		}
		re := regexp.MustCompile(`(?m)^(\s*"` + regexp.QuoteMeta(k) + `": )("[^"]*"|-?[0-9.eE+-]+|true|false|null)(,?)$`)
		out = re.ReplaceAllString(out, `${1}"<`+k+`>"${3}`)
	}
	return out
}

// TestJSONOutputGolden runs every CLI command that prints data with -o json
// against a real daemon, in one scenario (deploy, call, sessions, secrets,
// policy, tokens, identities, models, tools and the tool registry, audit,
// sandboxes), and keeps each output in
// testdata/json/<step>.json with times, ids and sizes that vary between runs
// masked.
func TestJSONOutputGolden(t *testing.T) {
	clearClientEnv(t)
	var data string
	d := newDaemon(t, func(c *config.Config) { data = c.Data })
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	agentDir := filepath.Join(work, "hello")
	os.Mkdir(agentDir, 0o755)
	for name, src := range goldenAgent {
		os.WriteFile(filepath.Join(agentDir, name), []byte(src), 0o644)
	}
	secretFile := filepath.Join(work, "secret")
	os.WriteFile(secretFile, []byte("sk-example"), 0o600)
	cedarFile := filepath.Join(work, "my.cedar")
	os.WriteFile(cedarFile, []byte(`@id("alice-may-ping")`+"\npermit (principal == User::\"alice\", action == Action::\"tool.call\", resource == Tool::\"ping\");\n"), 0o644)
	pets, err := filepath.Abs(filepath.Join("..", "..", "examples", "pets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var sandboxID string
	steps := []jsonStep{
		{name: "version", args: []string{"version"}, mask: []string{"go_version"}},
		{name: "status", args: []string{"status"}, mask: []string{"go_version", "node_id", "uptime_seconds", "streams", "messages", "bytes"}},
		{name: "deploy", args: []string{"deploy", agentDir}, mask: []string{"run", "id", "-duration_ms", "provenance", "hash", "report", "input_digest", "template", "message"}},
		{name: "agents_list", args: []string{"agents", "list"}},
		{name: "agents_versions", args: []string{"agents", "versions", "hello"}},
		{name: "sessions_list", args: []string{"sessions", "list", "--agent", "hello"}, mask: []string{"memory_bytes"}},
		{name: "sessions_show", args: []string{"sessions", "show", "hello/s1"}, mask: []string{"memory_bytes"}},
		{name: "sessions_hibernate", args: []string{"sessions", "hibernate", "hello/s1"}, mask: []string{"snapshot_bytes"}},
		{name: "secret_set", args: []string{"secret", "set", "API_KEY", "--from-file", secretFile, "--allow-host", "api.example.com"}},
		{name: "secret_list", args: []string{"secret", "list"}},
		{name: "policy_apply", args: []string{"policy", "apply", cedarFile}, mask: []string{"run"}},
		{name: "policy_show", args: []string{"policy", "show"}},
		{name: "policy_test", args: []string{"policy", "test", "--principal", "user:alice", "--action", "agent.read", "--resource", "Agent::hello"}},
		{name: "policy_trusted_hosts", args: []string{"policy", "trusted-hosts", "api.example.com"}},
		{name: "policy_private_hosts", args: []string{"policy", "private-hosts"}},
		{name: "token_create", args: []string{"token", "create", "--subject", "user:alice", "--ttl", "1h"}, mask: []string{"token", "id"}},
		{name: "identity_issue", args: []string{"identity", "issue", "--spiffe-id", "user:alice", "--cert", filepath.Join(work, "alice.crt"),
			"--key", filepath.Join(work, "alice.key"), "--bundle", filepath.Join(work, "ca.crt")}},
		{name: "approvals_list", args: []string{"approvals", "list"}},
		{name: "audit_list", args: []string{"audit", "list", "--type", "secret"}, mask: []string{"seq", "next"}},
		{name: "models_add", args: []string{"models", "add", "local", "--base-url", "https://api.example.com/v1", "--models", "default=m1", "--price", "m1=1/2"}},
		{name: "models_list", args: []string{"models", "list"}},
		{name: "models_budget", args: []string{"models", "budget", "--agent", "hello", "--tokens", "1000"}},
		{name: "models_budgets", args: []string{"models", "budgets"}},
		{name: "usage", args: []string{"usage"}},
		{name: "traffic_levels", args: []string{"traffic", "levels"}, mask: trafficMask},
		{name: "traffic_flows", args: []string{"traffic", "flows", "--level", "system", "--limit", "1"}, mask: trafficMask},
		{name: "traffic_top", args: []string{"traffic", "top", "-n", "1", "--by", "rate"}, mask: trafficMask},
		{name: "models_remove", args: []string{"models", "remove", "local"}},
		{name: "tools_list", args: []string{"tools", "list"}},
		{name: "tools_search", args: []string{"tools", "search", "state"}},
		{name: "tools_call", args: []string{"tools", "call", "ping"}},
		{name: "tools_add", args: []string{"tools", "add", "pets", "--openapi", pets}},
		{name: "tools_registry", args: []string{"tools", "registry"}},
		{name: "tools_registry_name", args: []string{"tools", "registry", "pets"}},
		{name: "tools_refresh", args: []string{"tools", "refresh", "pets"}},
		{name: "tools_approve", args: []string{"tools", "approve", "pets"}},
		{name: "tools_remove", args: []string{"tools", "remove", "pets"}},
		{name: "sandbox_create", args: []string{"sandbox", "create", "--tier", "process"}, root: true},
		{name: "sandbox_show", args: []string{"sandbox", "show", "SANDBOX"}, root: true},
		{name: "sandbox_list", args: []string{"sandbox", "list"}, root: true},
		{name: "sandbox_exec", args: []string{"sandbox", "exec", "--background", "SANDBOX", "--", "true"}, mask: []string{"pid"}, root: true},
		{name: "sandbox_cp", args: []string{"sandbox", "cp", secretFile, "SANDBOX:/workspace/copied"}, root: true},
		{name: "sandbox_ls", args: []string{"sandbox", "ls", "SANDBOX"}, root: true},
	}
	used := map[string]bool{}
	for _, st := range steps {
		file := filepath.Join("testdata", "json", st.name+".json")
		used[file] = true
		if st.name == "sessions_list" { // a session to list
			if code, out, errOut := runCLI(t, "--data", data, "call", "hello/s1"); code != 0 || out != "hello from s1" {
				t.Fatalf("call: %d %q %q", code, out, errOut)
			}
		}
		t.Run(st.name, func(t *testing.T) {
			if st.root && os.Geteuid() != 0 {
				t.Skip("sandboxes need root (user namespaces, cgroups)")
			}
			args := append([]string{"--data", data, "-o", "json"}, st.args...)
			for i, a := range args {
				args[i] = strings.ReplaceAll(a, "SANDBOX", sandboxID)
			}
			code, out, errOut := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("agentcloud %s: exit %d: %s", strings.Join(st.args, " "), code, errOut)
			}
			if st.name == "sandbox_create" {
				sandboxID = jsonField(t, out, "id")
			}
			if sandboxID != "" {
				out = strings.ReplaceAll(out, sandboxID, "<sandbox-id>")
			}
			out = strings.ReplaceAll(strings.ReplaceAll(out, work, "<work>"), pets, "<examples>/pets.yaml")
			golden(t, file, maskJSON(out, st.mask))
		})
	}
	staleGoldens(t, filepath.Join("testdata", "json"), used)
}

// jsonField is the string value of a top-level "key": "value" line.
func jsonField(t *testing.T, out, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  "` + key + `": "([^"]+)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in %s", key, out)
	}
	return m[1]
}

// TestMaskJSON: masking keeps order and indentation and touches only
// times and the named keys' scalars.
func TestMaskJSON(t *testing.T) {
	in := "{\n  \"id\": \"abc\",\n  \"n\": 12,\n  \"at\": \"2026-01-02T03:04:05.123Z\",\n  \"keep\": \"x\",\n  \"id2\": {\n    \"id\": -1.5e3\n  }\n}\n"
	want := "{\n  \"id\": \"<id>\",\n  \"n\": \"<n>\",\n  \"at\": \"<time>\",\n  \"keep\": \"x\",\n  \"id2\": {\n    \"id\": \"<id>\"\n  }\n}\n"
	if got := maskJSON(in, []string{"id", "n", "id2"}); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if !bytes.Equal([]byte(maskJSON(in, nil)), []byte(timeRE.ReplaceAllString(in, `"<time>"`))) {
		t.Fatal("no keys: only times masked")
	}
}
