package daemon_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/store"
)

// shopJS answers "shop VERSION"; MODE "throw" makes every shopper's call
// fail (a regression its tests do not catch).
const shopJS = `export default { async fetch(req, env) {
  if ("MODE" === "throw" && req.headers.get("x-shopper")) throw new Error("regression in VERSION");
  return new Response("shop VERSION");
} };`

const shopTests = `test("answers with its version", async () => {
  const r = await fetch("http://session/");
  expect(r.status).toBe(200);
  expect(await r.text()).toMatch(/^shop /);
});
test("is stateless", async () => {
  const r = await fetch("http://session/again");
  expect(await r.text()).toMatch(/shop/);
});`

// shopFiles is a version of agent shop: egress hosts, rollout steps, code
// in mode, and its tests.
func shopFiles(version, mode string, egress ...string) map[string]string {
	man := map[string]any{"name": "shop", "entry": "agent.js",
		"rollout": map[string]any{"steps": []map[string]any{{"percent": 50, "pause_seconds": 60}, {"percent": 100}}}}
	if len(egress) > 0 {
		man["egress"] = egress
	}
	mj, _ := json.Marshal(man)
	code := strings.NewReplacer("VERSION", version, "MODE", mode).Replace(shopJS)
	return map[string]string{"agent.json": string(mj), "agent.js": code, "tests/shop.test.js": shopTests}
}

// fakeClock is the pipeline's clock in a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// pipelineDaemon starts a node whose rollouts tick every 20 ms on a fake
// clock and decide on 5 calls.
func pipelineDaemon(t *testing.T) (*daemon.Daemon, *client.Client, *fakeClock) {
	cfg := config.Default()
	cfg.RolloutInterval = config.Duration(20 * time.Millisecond)
	cfg.RolloutMinCalls = 5
	d, admin := startDaemonWith(t, cfg, nil)
	clock := &fakeClock{now: time.Now()}
	d.SetPipelineClock(clock.Now)
	return d, admin, clock
}

// traffic makes n calls to agent shop on fresh sessions (so both versions
// of a rollout see some), ignoring the answers.
func traffic(t *testing.T, c *client.Client, round, n int) {
	t.Helper()
	for i := range n {
		resp, err := c.Call(context.Background(), "shop", fmt.Sprintf("r%d-%d", round, i), "GET", "/", nil, http.Header{"X-Shopper": {"1"}})
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// rolloutUntil drives traffic and the clock until agent shop's latest
// rollout reaches phase.
func rolloutUntil(t *testing.T, c *client.Client, clock *fakeClock, phase string) *api.Deployment {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		dep, err := c.Deployment(context.Background(), "shop")
		if err != nil {
			t.Fatal(err)
		}
		if dep.Rollout != nil && dep.Rollout.Phase == phase {
			return dep
		}
		traffic(t, c, round, 12)
		clock.Advance(2 * time.Minute)
		time.Sleep(60 * time.Millisecond)
	}
	dep, _ := c.Deployment(context.Background(), "shop")
	t.Fatalf("rollout of shop did not reach %s: %+v", phase, dep.Rollout)
	return nil
}

func serving(t *testing.T, c *client.Client, sess string) string {
	t.Helper()
	resp, err := c.Call(context.Background(), "shop", sess, "GET", "/", nil, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestAgentChangeReviewRolloutRollback is the deploy pipeline's whole
// story on one node, through its real parts: an agent ships a change that
// adds an egress host through deploy_agent over MCP; the run stops for
// review (the agent cannot approve it, nor can another tenant read,
// approve, cancel or roll it back); the owner approves; the rollout's
// steps run; a forced regression in the next version is rolled back by
// itself; the ledger explains the serving version (change → test → policy
// → approval → provenance), verifies, and names an entry edited in the
// store.
func TestAgentChangeReviewRolloutRollback(t *testing.T) {
	d, admin, clock := pipelineDaemon(t)
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice")
	bob := userClient(t, d, admin, "user:bob")

	// Alice's first version: no new capability, her own → released at once.
	v1, err := deployFiles(t, alice, shopFiles("v1", ""))
	if err != nil || v1.RunState != api.RunPassed {
		t.Fatalf("alice's first deploy: %+v %v", v1, err)
	}
	if got := serving(t, alice, "a"); got != "shop v1" {
		t.Fatalf("v1 serves %q", got)
	}
	// The builder agent may deploy shop (a policy the administrator adds).
	if err := deployJS(admin, `{"name":"builder","entry":"agent.js","tools":["deploy_agent"]}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApplyPolicies(ctx, `@id("builder-ships-shop")
permit (principal is Session, action == Action::"agent.deploy", resource == Agent::"shop")
when { principal.agent == Agent::"builder" };`); err != nil {
		t.Fatal(err)
	}
	if r, err := admin.Call(ctx, "builder", "s1", "GET", "/", nil, nil); err != nil {
		t.Fatal(err)
	} else {
		r.Body.Close()
	}
	tok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "session:builder/s1", TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	cs := mcpConnect(t, d.Addr(), tok.Token)
	deployTool := func(files map[string]string) api.AgentVersion {
		t.Helper()
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy_agent", Arguments: map[string]any{"files": files}})
		if err != nil || r.IsError {
			t.Fatalf("deploy_agent: %v %s", err, mustText(r))
		}
		var v api.AgentVersion
		structuredOf(t, r, &v)
		return v
	}

	// The agent's change adds an egress host: the run waits for review.
	v2 := deployTool(shopFiles("v2", "", "api.example.com"))
	if v2.RunState != api.RunWaiting || v2.Run == "" {
		t.Fatalf("deploy_agent of a new egress host: %+v, want a run waiting for review", v2)
	}
	run, err := alice.PipelineRun(ctx, v2.Run)
	if err != nil {
		t.Fatal(err)
	}
	reasons := strings.Join(run.Decision.Reasons, ",")
	if run.Stage != api.StageReview || !strings.Contains(reasons, "release-by-agent") || !strings.Contains(reasons, "release-new-capability") ||
		run.Tests == nil || !run.Tests.Passed || run.Tests.Total != 2 {
		t.Fatalf("run waiting for review: %+v", run)
	}
	if got := serving(t, alice, "a"); got != "shop v1" {
		t.Fatalf("while the run waits, shop answers %q", got)
	}
	// Nobody but the owner (and administrators) acts on it.
	sess, err := client.New("http://"+d.Addr(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client.Client{"bob": bob, "the builder's session": sess} {
		if _, err := c.ApproveRun(ctx, v2.Run, "lgtm"); !api.IsKind(err, api.KindForbidden) {
			t.Fatalf("%s approving: %v, want 403", name, err)
		}
	}
	hostileTenant(t, bob, v2.Run)

	// The owner approves: the rollout starts at 50 % and completes.
	if _, err := alice.ApproveRun(ctx, v2.Run, "new API host is ours"); err != nil {
		t.Fatal(err)
	}
	if run, err = alice.WaitRun(ctx, v2.Run); err != nil || run.State != api.RunPassed {
		t.Fatalf("approved run: %+v %v", run, err)
	}
	dep := rolloutUntil(t, alice, clock, "completed")
	if dep.Rollout.Canary != v2.Digest {
		t.Fatalf("completed rollout: %+v", dep.Rollout)
	}

	// A regression: every call throws. Approved, rolled out, rolled back.
	v3 := deployTool(shopFiles("v3", "throw", "api.example.com"))
	if v3.RunState != api.RunWaiting {
		t.Fatalf("agent's second change: %+v", v3)
	}
	if _, err := alice.ApproveRun(ctx, v3.Run, ""); err != nil {
		t.Fatal(err)
	}
	if run, err := alice.WaitRun(ctx, v3.Run); err != nil || run.State != api.RunPassed {
		t.Fatalf("approved regression: %+v %v", run, err)
	}
	dep = rolloutUntil(t, alice, clock, "rolled_back")
	if !strings.Contains(dep.Rollout.Reason, "automatic") || dep.Rollout.Analysis == nil || dep.Rollout.Analysis.Canary.Errors == 0 {
		t.Fatalf("rollback: %+v", dep.Rollout)
	}
	for i := range 5 {
		if got := serving(t, alice, fmt.Sprintf("after-%d", i)); got != "shop v2" {
			t.Fatalf("after the rollback session %d gets %q", i, got)
		}
	}

	// The ledger explains v2: change → test → policy → approval → provenance.
	run, err = alice.PipelineRun(ctx, v2.Run)
	if err != nil {
		t.Fatal(err)
	}
	trail, err := admin.LedgerWhy(ctx, run.Ledger["provenance"].Hash)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range trail.Records {
		var e struct{ Type string }
		_ = json.Unmarshal(r.Entry, &e)
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "provenance,approval,policy,test,change" {
		t.Fatalf("why v2: %s", got)
	}
	if _, err := alice.LedgerWhy(ctx, run.Ledger["provenance"].Hash); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("a user reading the whole ledger: %v, want 403", err)
	}
	// The audit stream (bob's refusals among it) is sealed into the ledger.
	if err := d.SealAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := d.CheckAudit(ctx); err != nil || n == 0 {
		t.Fatalf("sealed audit records: %d checked, %v", n, err)
	}
	rep, err := admin.LedgerVerify(ctx)
	if err != nil || !rep.OK || rep.Entries < 10 {
		t.Fatalf("verify: %+v %v", rep, err)
	}

	// Someone with the store rewrites entry "test" of v2's chain (its
	// tests now failed) by appending a batch record restating it.
	tampered := run.Ledger["test"].Index
	orig, err := admin.LedgerEntry(ctx, tampered)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte(strings.Replace(string(orig.Raw), `"passed":true`, `"passed":false`, 1))
	if string(forged) == string(orig.Raw) {
		t.Fatalf("entry %d has no passed field: %s", tampered, orig.Raw)
	}
	wal, err := d.StoreForTest().Log(ctx, "ledger-main", store.LogOptions{Subjects: []string{"ledger.main.e.*"}})
	if err != nil {
		t.Fatal(err)
	}
	rec := append([]byte{'L', 'G', 'R', 1}, binary.BigEndian.AppendUint64(nil, tampered)...)
	rec = binary.BigEndian.AppendUint16(rec, 1)
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(forged)))
	if _, err := wal.Append(ctx, "ledger.main.e.0", append(rec, forged...)); err != nil {
		t.Fatal(err)
	}
	rep, err = admin.LedgerVerify(ctx)
	if err != nil || rep.OK || rep.Failure == nil || rep.Failure.Index != tampered || rep.Failure.Type != "test" {
		t.Fatalf("verify after tampering with entry %d: %+v %v", tampered, rep, err)
	}
	t.Logf("tampered entry named: %+v", *rep.Failure)
}

// hostileTenant checks that bob, another tenant, can do nothing to alice's
// run and agent: 403 or 404, never a 5xx.
func hostileTenant(t *testing.T, bob *client.Client, runID string) {
	t.Helper()
	ctx := context.Background()
	calls := map[string]func() error{
		"read the run":      func() error { _, err := bob.PipelineRun(ctx, runID); return err },
		"read its logs":     func() error { _, err := bob.PipelineLogs(ctx, runID, 0, 0); return err },
		"read its diff":     func() error { _, err := bob.PipelineDiff(ctx, runID); return err },
		"list shop's runs":  func() error { _, err := bob.PipelineRuns(ctx, "shop", 0); return err },
		"list every run":    func() error { _, err := bob.PipelineRuns(ctx, "", 0); return err },
		"approve":           func() error { _, err := bob.ApproveRun(ctx, runID, ""); return err },
		"reject":            func() error { _, err := bob.RejectRun(ctx, runID, ""); return err },
		"cancel":            func() error { _, err := bob.CancelRun(ctx, runID); return err },
		"read deployment":   func() error { _, err := bob.Deployment(ctx, "shop"); return err },
		"roll back":         func() error { _, err := bob.Rollback(ctx, "shop", "", "mine now"); return err },
		"read the ledger":   func() error { _, err := bob.LedgerCheckpoint(ctx); return err },
		"verify the ledger": func() error { _, err := bob.LedgerVerify(ctx); return err },
		"an unknown run":    func() error { _, err := bob.PipelineRun(ctx, "run-aaaaaaaaaaaaaaaa"); return err },
		"a malformed run":   func() error { _, err := bob.PipelineRun(ctx, "x/../y"); return err },
	}
	for name, call := range calls {
		err := call()
		p := api.AsProblem(err)
		if err == nil || p == nil || (p.Status != 403 && p.Status != 404 && p.Status != 400) {
			t.Errorf("bob: %s of alice's: %v, want 403 or 404", name, err)
		}
	}
}

// deployFiles deploys files as c.
func deployFiles(t *testing.T, c *client.Client, files map[string]string) (*api.AgentVersion, error) {
	return c.Deploy(context.Background(), rawTarGz(t, files))
}

// TestFirstReleaseRunOwnerClass: a person's first release of a new agent
// that waits for review belongs to them before the agent exists: they may
// read and follow it but not approve it; another tenant may neither read,
// approve, cancel nor deploy the name meanwhile; an administrator approves
// and the author owns the agent.
func TestFirstReleaseRunOwnerClass(t *testing.T) {
	d, admin, _ := pipelineDaemon(t)
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice")
	bob := userClient(t, d, admin, "user:bob")
	v, err := deployFiles(t, alice, map[string]string{"agent.json": `{"name":"fresh","entry":"agent.js","egress":["api.example.com"]}`,
		"agent.js": echoAgent})
	if err != nil || v.RunState != api.RunWaiting {
		t.Fatalf("alice's first release with an egress host: %+v %v", v, err)
	}
	if _, err := alice.PipelineRun(ctx, v.Run); err != nil {
		t.Fatalf("alice reading her own run: %v", err)
	}
	if _, err := alice.PipelineRuns(ctx, "fresh", 0); err != nil {
		t.Fatalf("alice listing her agent's runs: %v", err)
	}
	if _, err := alice.ApproveRun(ctx, v.Run, "mine"); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("alice approving her own change: %v, want 403", err)
	}
	hostileTenant(t, bob, v.Run)
	_, err = deployFiles(t, bob, map[string]string{"agent.json": `{"name":"fresh","entry":"agent.js"}`, "agent.js": echoAgent})
	if !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindConflict) {
		t.Fatalf("bob deploying the name alice's run holds: %v, want 403 or 409", err)
	}
	if _, err := admin.ApproveRun(ctx, v.Run, "ok"); err != nil {
		t.Fatal(err)
	}
	if run, err := alice.WaitRun(ctx, v.Run); err != nil || run.State != api.RunPassed {
		t.Fatalf("approved first release: %+v %v", run, err)
	}
	if _, err := bob.Agent(ctx, "fresh"); !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("bob reading alice's agent: %v", err)
	}
	if _, err := alice.Agent(ctx, "fresh"); err != nil {
		t.Fatalf("alice reading her agent: %v", err)
	}
}

// TestLocalTestRouteClass: POST /v1/pipeline/test runs a bundle's tests
// as the test stage would without deploying it (passing and failing
// tests, a test file that does not load); it refuses a malformed bundle
// (4xx) and another tenant's agent name (403), and never makes a version
// current.
func TestLocalTestRouteClass(t *testing.T) {
	d, admin, _ := pipelineDaemon(t)
	ctx := context.Background()
	alice := userClient(t, d, admin, "user:alice")
	bob := userClient(t, d, admin, "user:bob")
	files := shopFiles("v1", "")
	rep, err := alice.TestBundle(ctx, rawTarGz(t, files))
	if err != nil || !rep.Passed || len(rep.Files) != 1 || len(rep.Files[0].Tests) != 2 {
		t.Fatalf("passing tests: %+v %v", rep, err)
	}
	files["tests/bad.test.js"] = `test("fails", async () => { expect(1).toBe(2); });`
	files["tests/broken.test.js"] = `this is not javascript`
	rep, err = alice.TestBundle(ctx, rawTarGz(t, files))
	if err != nil || rep.Passed {
		t.Fatalf("failing tests: %+v %v", rep, err)
	}
	if _, err := alice.Agent(ctx, "shop"); !api.IsKind(err, api.KindNotFound) && !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("testing deployed shop: %v", err)
	}
	for name, body := range map[string][]byte{"not gzip": []byte("nope"), "empty": nil} {
		resp, err := alice.Raw(ctx, "POST", "/v1/pipeline/test", bytes.NewReader(body), "application/gzip")
		p := api.AsProblem(err)
		if err == nil || p == nil || p.Status < 400 || p.Status >= 500 {
			if resp != nil {
				resp.Body.Close()
			}
			t.Fatalf("%s bundle: %v, want 4xx", name, err)
		}
	}
	if _, err := deployFiles(t, alice, shopFiles("v1", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.TestBundle(ctx, rawTarGz(t, shopFiles("bob", ""))); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("bob testing alice's agent: %v, want 403", err)
	}
}
