package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// meterAgent exercises a session's paths: durable state, fetch(), a tool
// call, and a loop that runs into its CPU limit.
const meterAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    switch (u.pathname) {
    case "/state": await env.state.put("k", "v".repeat(100)); return new Response("ok");
    case "/fetch": { const r = await fetch(u.searchParams.get("u")); return new Response(await r.text()); }
    case "/tool": return Response.json(await env.tools.call("http_fetch", {url: u.searchParams.get("u")}));
    case "/spin": for (;;) {}
    }
    return new Response("hello");
  }
};`

// scrape reads /metrics into series → value ("name{labels}" as exposed).
func scrape(t *testing.T, c *client.Client) map[string]float64 {
	t.Helper()
	resp, err := c.Raw(context.Background(), "GET", "/metrics", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// family sums the series of a family (a histogram's by its _count).
func family(series map[string]float64, name string) (sum float64, found bool) {
	for s, v := range series {
		n, _, _ := strings.Cut(s, "{")
		if n == name || n == name+"_count" {
			sum += v
			found = true
		}
	}
	return sum, found
}

// TestMetricsCoverEveryPartClass: after a session is deployed, called
// (state, fetch, a tool, a CPU-limit kill), hibernated and woken, and a
// sandbox runs a command and one over its memory limit, /metrics shows
// every part's families moving: sessions, isolates, sandboxes, egress,
// tools, policy, store and pipeline (cluster families exist only in a
// cluster: internal/cluster's TestForwarderMetrics). No label carries a
// session id, an agent's, user's or host's name.
func TestMetricsCoverEveryPartClass(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	before := scrape(t, admin)
	news := newRecorder(t, "news")
	alice := userClient(t, d, admin, "user:alice-meter")
	man := `{"name":"meter-agent","entry":"agent.js","egress":["` + news.pattern("news.test") + `"],"tools":["http_fetch"],` +
		`"limits":{"idle_seconds":3600,"cpu_ms":100,"wall_ms":30000}}`
	if err := deployJS(alice, man, meterAgent); err != nil {
		t.Fatal(err)
	}
	const sess = "sess-secret-7f3a"
	call := func(path string) int {
		resp, err := alice.Call(ctx, "meter-agent", sess, "GET", path, nil, nil)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	newsURL := url.QueryEscape(news.url("news.test"))
	for _, p := range []string{"/state", "/fetch?u=" + newsURL, "/tool?u=" + newsURL} {
		if code := call(p); code != 200 {
			t.Fatalf("GET %s: %d", p, code)
		}
	}
	if code := call("/spin"); code == 200 {
		t.Fatal("an endless loop answered 200")
	}
	if code := call("/"); code != 200 {
		t.Fatalf("after the CPU-limit kill: %d", code)
	}
	if _, err := alice.Hibernate(ctx, "meter-agent", sess); err != nil {
		t.Fatal(err)
	}
	hib := func() float64 { v, _ := family(scrape(t, admin), "agentcloud_sessions_hibernated"); return v }
	asleep := hib()
	if code := call("/"); code != 200 { // activation from the snapshot
		t.Fatalf("after hibernation: %d", code)
	}
	if awake := hib(); asleep < 1 || awake != asleep-1 {
		t.Errorf("agentcloud_sessions_hibernated: %v while hibernated, %v once woken", asleep, awake)
	}
	if _, err := alice.CallTool(ctx, "no-such-tool-"+sess, json.RawMessage(`{}`)); err == nil {
		t.Fatal("an unknown tool answered")
	}
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Limits: api.SandboxLimits{MemoryMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := alice.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "true"}, io.Discard, io.Discard); code != 0 || err != nil {
		t.Fatalf("exec true: %d %v", code, err)
	}
	// tail keeps the line it reads in memory; /dev/zero has no newline.
	_, _ = alice.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "tail", Args: []string{"/dev/zero"}}, io.Discard, io.Discard)
	after := scrape(t, admin)
	if err := alice.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}

	moving := []string{
		"agentcloud_session_activations_total", "agentcloud_session_activation_seconds", "agentcloud_session_hibernations_total",
		"agentcloud_session_state_written_bytes_total", "agentcloud_session_snapshot_bytes",
		"agentcloud_isolate_kills_total",
		"agentcloud_sandbox_create_seconds", "agentcloud_sandbox_exec_seconds", "agentcloud_sandbox_oom_kills_total",
		"agentcloud_egress_requests_total", "agentcloud_egress_request_seconds", "agentcloud_egress_received_bytes_total",
		"agentcloud_tool_calls_total", "agentcloud_tool_call_seconds",
		"agentcloud_policy_decisions_total",
		"agentcloud_store_write_seconds",
		"agentcloud_pipeline_runs_total", "agentcloud_pipeline_stage_seconds",
		"agentcloud_http_requests_total",
	}
	for _, name := range moving {
		b, _ := family(before, name)
		a, ok := family(after, name)
		if !ok || a <= b {
			t.Errorf("%s did not move: before %v, after %v (exported: %v)", name, b, a, ok)
		}
	}
	present := []string{"agentcloud_sessions_live", "agentcloud_sessions_hibernated", "agentcloud_session_live_memory_bytes", "agentcloud_session_evictions_total",
		"agentcloud_sandboxes_live", "agentcloud_store_fsync_per_write", "agentcloud_store_bytes", "agentcloud_egress_sent_bytes_total",
		"agentcloud_session_activation_errors_total", "agentcloud_store_write_errors_total",
		"agentcloud_store_read_cache_gets_total", "agentcloud_store_read_cache_bytes"}
	for _, name := range present {
		if _, ok := family(after, name); !ok {
			t.Errorf("%s not exported", name)
		}
	}
	if v, _ := family(after, "agentcloud_sessions_live"); v < 1 {
		t.Errorf("agentcloud_sessions_live = %v with a live session", v)
	}
	if v := after[`agentcloud_sandboxes_live{tier="process"}`]; v < 1 {
		t.Errorf(`agentcloud_sandboxes_live{tier="process"} = %v with a sandbox`, v)
	}
	if v := after[`agentcloud_isolate_kills_total{kind="js",reason="time"}`]; v < 1 {
		t.Errorf("no isolate killed for its CPU time: %v", v)
	}
	if v := after[`agentcloud_tool_calls_total{result="unknown_tool",tool="unknown"}`]; v < 1 {
		t.Errorf("the unknown tool's call is not counted under tool=\"unknown\": %v", v)
	}
	t.Run("GrafanaDashboard", func(t *testing.T) { checkDashboard(t, after) })
	// Bounded labels: nothing a tenant named becomes a label value.
	for s := range after {
		_, labels, _ := strings.Cut(s, "{")
		for _, secret := range []string{sess, "meter-agent", "alice-meter", "news.test", sb.ID, "no-such-tool"} {
			if strings.Contains(labels, secret) {
				t.Errorf("series %s carries %q", s, secret)
			}
		}
	}
}

// metricName matches the metric names in a PromQL expression.
var metricName = regexp.MustCompile(`\b(?:agentcloud|go|process)_[a-z0-9_]+\b`)

// checkDashboard: docs/grafana-dashboard.json is a dashboard whose every
// expression names only metrics the daemon exports (series holds a
// scrape after each part ran), and which shows every part. The cluster's
// metrics exist only in a cluster: internal/cluster's
// TestDashboardClusterMetrics checks those names against its registry.
func checkDashboard(t *testing.T, series map[string]float64) {
	b, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	exported := map[string]bool{}
	for s := range series {
		n, _, _ := strings.Cut(s, "{")
		exported[n] = true
	}
	named := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricName.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: expression %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				named[n] = true
				if !exported[n] && !strings.HasPrefix(n, "agentcloud_cluster_") {
					t.Errorf("panel %q: %s is not exported by the daemon (expression %q)", p.Title, n, tg.Expr)
				}
			}
		}
	}
	for _, part := range []string{"http", "gateway", "session", "isolate", "sandbox", "egress", "tool", "policy", "store", "pipeline", "cluster"} {
		found := false
		for n := range named {
			found = found || strings.HasPrefix(n, "agentcloud_"+part)
		}
		if !found {
			t.Errorf("the dashboard shows no agentcloud_%s* metric", part)
		}
	}
}
