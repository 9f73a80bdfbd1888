package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// writeShop writes an agent "shop" that counts its requests in durable
// state and answers "shop VERSION COUNT", with a test that passes unless
// the source says "broken".
func writeShop(t *testing.T, dir, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"agent.json": `{"name": "shop", "entry": "agent.js"}`,
		"agent.js": `export default { async fetch(req, env) {
  const n = ((await env.state.get("n")) ?? 0) + 1;
  await env.state.put("n", n);
  console.log("shop ` + version + ` " + n);
  return new Response("shop ` + version + ` " + n + "\n");
} };
`,
		"tests/shop.test.js": `test("answers with its version", async () => {
  const r = await fetch("http://session/");
  expect(await r.text()).toMatch(/^shop v[0-9]+ 1/);
});
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDevPreviewClass: `agentcloud dev` makes a version the agent's
// preview through a preview run of the pipeline (validate, build, test,
// record; recorded in the ledger as a preview, never released). Production
// keeps answering v1 with its own sessions and state while the preview
// answers v2; a failing preview leaves the last good one; another tenant
// can neither reach, replace nor end the preview; ending the preview
// leaves production as it was; a preview of an agent never deployed
// serves only as the preview.
func TestDevPreviewClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon and runs the pipeline")
	}
	clearClientEnv(t)
	var data string
	d := newDaemon(t, func(c *config.Config) { data = c.Data })
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append([]string{"--data", data}, args...)...)
	}
	must := func(want string, args ...string) {
		t.Helper()
		code, out, errOut := cli(args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%v: %d %q %q; want %q", args, code, out, errOut, want)
		}
	}
	refused := func(args ...string) {
		t.Helper()
		if code, out, errOut := cli(args...); code == 0 {
			t.Fatalf("%v was not refused: %q %q", args, out, errOut)
		}
	}
	dir := filepath.Join(t.TempDir(), "shop")
	writeShop(t, dir, "v1")
	if code, _, errOut := cli("deploy", dir); code != 0 {
		t.Fatalf("deploy v1: %s", errOut)
	}
	must("shop v1 1", "call", "shop/s1", "/")
	v1 := agentCurrent(t, cli, "shop")

	// The preview: v2, through a preview run.
	writeShop(t, dir, "v2")
	if code, out, errOut := cli("dev", dir, "--once"); code != 0 || !strings.Contains(out, "preview of shop") {
		t.Fatalf("dev --once: %d %q %q", code, out, errOut)
	}
	must("shop v1 2", "call", "shop/s1", "/")              // production: v1, its state goes on
	must("shop v2 1", "call", "--preview", "shop/s1", "/") // preview: v2, state of its own
	must("shop v2 2", "call", "--preview", "shop/s1", "/")
	must("shop v1 3", "call", "shop/s1", "/")
	if cur := agentCurrent(t, cli, "shop"); cur != v1 {
		t.Fatalf("production moved to %s (was %s)", cur, v1)
	}
	run := lastRun(t, cli, "shop")
	if run.Kind != api.RunKindPreview || run.State != api.RunPassed {
		t.Fatalf("run %s: kind %q state %q", run.ID, run.Kind, run.State)
	}
	var names []string
	for _, st := range run.Stages {
		names = append(names, st.Name+":"+st.State)
	}
	if got := strings.Join(names, " "); got != "validate:passed build:passed test:passed policy:passed review:skipped record:passed preview:passed" {
		t.Fatalf("stages: %s", got)
	}
	if _, ok := run.Ledger["provenance"]; ok {
		t.Fatalf("a preview was signed as a release: %v", run.Ledger)
	}
	change, ok := run.Ledger["change"]
	if !ok {
		t.Fatalf("no change entry: %v", run.Ledger)
	}
	must(`"preview": true`, "ledger", "why", change.Hash)

	// A preview whose tests fail is not served; the last good one is.
	writeShop(t, dir, "broken")
	refused("dev", dir, "--once")
	must("shop v2 3", "call", "--preview", "shop/s1", "/")

	// Another tenant reaches none of it.
	code, out, errOut := cli("-o", "json", "token", "create", "--subject", "user:mallory", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("token create: %d %q", code, errOut)
	}
	mallory := jsonField(t, out, "token")
	writeShop(t, dir, "v9")
	refused("--token", mallory, "call", "--preview", "shop/s1", "/")
	refused("--token", mallory, "dev", dir, "--once")
	refused("--token", mallory, "agents", "end-preview", "shop")
	refused("call", "shop.preview/s1", "/") // the namespace has no public name
	must("shop v2 4", "call", "--preview", "shop/s1", "/")

	// logs --preview reads the preview's lines, logs production's.
	for _, c := range []struct {
		args []string
		want string
	}{{[]string{"logs", "--preview", "shop"}, "shop v2 4"}, {[]string{"logs", "shop"}, "shop v1 3"}} {
		code, out, errOut := cli(append([]string{"-o", "json"}, c.args...)...)
		var l api.LogList
		if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Entries) == 0 || l.Entries[len(l.Entries)-1].Text != c.want {
			t.Fatalf("%v: %d %s %s, want last %q", c.args, code, out, errOut, c.want)
		}
		for _, e := range l.Entries {
			if !strings.HasPrefix(e.Text, c.want[:len("shop v1")]) {
				t.Fatalf("%v holds %q", c.args, e.Text)
			}
		}
	}
	refused("--token", mallory, "logs", "--preview", "shop")

	// Ending the preview leaves production as it is.
	if code, _, errOut := cli("agents", "end-preview", "shop"); code != 0 {
		t.Fatalf("end-preview: %s", errOut)
	}
	refused("call", "--preview", "shop/s1", "/")
	refused("logs", "--preview", "shop")
	refused("agents", "end-preview", "shop")
	must("shop v1 4", "call", "shop/s1", "/")
	if cur := agentCurrent(t, cli, "shop"); cur != v1 {
		t.Fatalf("production moved to %s after the preview ended", cur)
	}

	// A new preview starts with fresh state.
	writeShop(t, dir, "v3")
	if code, _, errOut := cli("dev", dir, "--once"); code != 0 {
		t.Fatalf("dev v3: %s", errOut)
	}
	must("shop v3 1", "call", "--preview", "shop/s1", "/")

	// A preview of an agent never deployed: served as the preview only,
	// and not listed as an agent.
	fresh := filepath.Join(t.TempDir(), "fresh")
	writeShop(t, fresh, "v1")
	man := filepath.Join(fresh, "agent.json")
	if err := os.WriteFile(man, []byte(`{"name": "fresh", "entry": "agent.js"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli("dev", fresh, "--once"); code != 0 {
		t.Fatalf("dev fresh: %s", errOut)
	}
	must("shop v1 1", "call", "--preview", "fresh/a", "/")
	refused("call", "fresh/a", "/")
	refused("--token", mallory, "call", "--preview", "fresh/a", "/")
	if _, out, _ := cli("agents", "list"); strings.Contains(out, "fresh") || strings.Contains(out, ".preview") {
		t.Fatalf("agents list shows a preview: %q", out)
	}

	// The routes refuse malformed requests with 4xx problems, never 5xx.
	url, err := os.ReadFile(filepath.Join(data, daemon.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(data, daemon.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New("http://"+strings.TrimSpace(string(url)), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		method, path, body string
		kind               api.Kind
	}{
		{"GET", "/agents/shop.preview/sessions/s1", "", api.KindInvalidID},
		{"GET", "/agents/Shop/preview/sessions/s1", "", api.KindInvalidID},
		{"GET", "/agents/shop/preview/sessions/" + strings.Repeat("s", 200), "", api.KindInvalidID},
		{"GET", "/agents/nobody/preview/sessions/s1", "", api.KindNotFound},
		{"POST", "/agents/fresh/preview/sessions/s%00", "", api.KindInvalidID},
		{"POST", "/v1/previews", "not a tar.gz", api.KindBadRequest},
		{"POST", "/v1/previews", "", api.KindBadRequest},
		{"DELETE", "/v1/agents/BAD!/preview", "", api.KindInvalidID},
		{"DELETE", "/v1/agents/nobody/preview", "", api.KindNotFound},
	} {
		resp, err := admin.Raw(ctx, c.method, c.path, strings.NewReader(c.body), "application/gzip")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s %s: %d, want %s", c.method, c.path, resp.StatusCode, c.kind)
			continue
		}
		if p := api.AsProblem(err); p == nil || p.Kind() != c.kind || p.Status >= 500 {
			t.Errorf("%s %.60s: %v, want %s", c.method, c.path, err, c.kind)
		}
	}

	// Deleting the agent deletes its preview.
	if code, _, errOut := cli("agents", "delete", "shop"); code != 0 {
		t.Fatalf("agents delete: %s", errOut)
	}
	refused("call", "--preview", "shop/s1", "/")
}

// agentCurrent is the current version of agent, per agents list.
func agentCurrent(t *testing.T, cli func(...string) (int, string, string), agent string) string {
	t.Helper()
	code, out, errOut := cli("-o", "json", "agents", "list")
	if code != 0 {
		t.Fatalf("agents list: %s", errOut)
	}
	var list []api.Agent
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("agents list: %v in %q", err, out)
	}
	for _, a := range list {
		if a.Name == agent {
			return a.Current
		}
	}
	t.Fatalf("agent %s not listed: %q", agent, out)
	return ""
}

// lastRun is agent's newest pipeline run.
func lastRun(t *testing.T, cli func(...string) (int, string, string), agent string) api.PipelineRun {
	t.Helper()
	code, out, errOut := cli("-o", "json", "pipeline", "runs", "--agent", agent)
	if code != 0 {
		t.Fatalf("pipeline runs: %s", errOut)
	}
	var runs []api.PipelineRun
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) == 0 {
		t.Fatalf("pipeline runs: %v in %q", err, out)
	}
	return runs[0]
}
