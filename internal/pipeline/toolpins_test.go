package pipeline

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
)

// countingPinner is the real registry, counting (in the node's store) how
// often a value was put in force, and slowed after it took effect so a
// kill lands there.
type countingPinner struct {
	ToolPinner
	kv   store.KV
	slow time.Duration
}

func (c countingPinner) PinExactly(ctx context.Context, upstream string, pins []api.ToolPin, by string) error {
	if err := c.ToolPinner.PinExactly(ctx, upstream, pins, by); err != nil {
		return err
	}
	keys, _ := c.kv.Keys(ctx, "applied")
	if _, err := c.kv.Put(ctx, store.Key("applied", fmt.Sprint(len(keys))), []byte("x")); err != nil {
		return err
	}
	time.Sleep(c.slow)
	return nil
}

// pinNode is a node whose runner changes tool pins of a real registry.
type pinNode struct {
	*env
	reg    *registry.Registry
	counts store.KV
}

// withToolPins makes the runner change the pins of a registry on the
// node's own store, counting applies and sleeping slow after each.
func withToolPins(t testing.TB, n *pinNode, slow time.Duration) envOption {
	return func(e *env, c *Config) {
		ctx := context.Background()
		kv, err := e.st.KV(ctx, registry.Bucket, store.KVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.counts, err = e.st.KV(ctx, "test_pins", store.KVOptions{}); err != nil {
			t.Fatal(err)
		}
		if n.reg, err = registry.New(registry.Config{KV: kv, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
		pinner := countingPinner{ToolPinner: n.reg, kv: n.counts, slow: slow}
		c.Targets = map[string]ConfigTarget{api.ConfigToolPins: ToolPinsTarget{Registry: func() ToolPinner { return pinner }, Validate: registry.CheckPins}}
	}
}

func openPinNode(t testing.TB, dir string) *pinNode {
	n := &pinNode{}
	n.env = openEnv(t, dir, withToolPins(t, n, 0))
	t.Cleanup(n.reg.Close)
	n.start(t)
	return n
}

func (n *pinNode) applies(t testing.TB) int {
	keys, err := n.counts.Keys(context.Background(), "applied")
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// calcUpstream is an MCP server on loopback serving add and mul.
func calcUpstream(t testing.TB) (*mcp.Server, string) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "calc", Version: "1"}, nil)
	calcTool(srv, "add", "Add two numbers.")
	calcTool(srv, "mul", "Multiply two numbers.")
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

type calcIn struct {
	A int `json:"a"`
	B int `json:"b"`
}

// calcTool adds (or replaces) a tool of srv.
func calcTool(srv *mcp.Server, name, desc string) {
	mcp.AddTool(srv, &mcp.Tool{Name: name, Description: desc}, func(_ context.Context, _ *mcp.CallToolRequest, in calcIn) (*mcp.CallToolResult, map[string]int, error) {
		return nil, map[string]int{"r": in.A + in.B}, nil
	})
}

// changeUpstream changes what srv serves for add and refreshes the
// registry, which quarantines add with the new definition pending.
func (n *pinNode) changeUpstream(t testing.TB, srv *mcp.Server, tool, desc string) {
	calcTool(srv, tool, desc)
	if _, err := n.reg.Refresh(context.Background(), "calc"); err != nil {
		t.Fatal(err)
	}
}

// proposal is the value approving tools would submit (as the approve
// route builds it).
func (n *pinNode) proposal(t testing.TB, tools ...string) json.RawMessage {
	pins, _, err := n.reg.Proposal(context.Background(), "calc", tools)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(api.ToolPins{Tools: pins})
	return b
}

// pin is "status description hash" of a tool.
func (n *pinNode) pin(t testing.TB, tool string) string {
	e, err := n.reg.Get(context.Background(), "calc")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range e.Tools {
		if p.Name == tool {
			return p.Status + " " + p.Description + " " + p.Hash
		}
	}
	return "(none)"
}

func pinSubmission(v json.RawMessage, by api.PipelinePrincipal) ConfigSubmission {
	return ConfigSubmission{Target: api.ConfigToolPins, Name: "calc", Value: v, Principal: by}
}

// newCalc registers calc and changes add upstream (quarantined, v2
// pending).
func newCalc(t testing.TB, n *pinNode) *mcp.Server {
	srv, url := calcUpstream(t)
	if _, err := n.reg.Add(context.Background(), registry.AddRequest{Name: "calc", MCPURL: url, By: admin.ID}); err != nil {
		t.Fatal(err)
	}
	n.changeUpstream(t, srv, "add", "Add two numbers, v2.")
	return srv
}

// TestToolPinRunClass: approving a changed tool is a run (validate →
// policy → review → record → apply) that pins exactly the reviewed
// definition and only the tools approved; its diff shows the definitions;
// values that do not hold (a hash that is not the definition's, hidden
// characters, a tool named twice, an unknown upstream) are refused naming
// the field, with no run and no change.
func TestToolPinRunClass(t *testing.T) {
	ctx := context.Background()
	n := openPinNode(t, t.TempDir())
	srv := newCalc(t, n)
	calcTool(srv, "sub", "Subtract two numbers.")
	if _, err := n.reg.Refresh(ctx, "calc"); err != nil {
		t.Fatal(err)
	}
	mulBefore := n.pin(t, "mul")
	if !strings.HasPrefix(n.pin(t, "add"), "quarantined Add two numbers. ") || !strings.HasPrefix(n.pin(t, "sub"), "quarantined") {
		t.Fatalf("before: add %s, sub %s", n.pin(t, "add"), n.pin(t, "sub"))
	}
	v2 := n.reviewedHash(t, "add")
	run, err := n.runner.SubmitConfig(ctx, pinSubmission(n.proposal(t, "add"), admin))
	if err != nil {
		t.Fatal(err)
	}
	if run = n.wait(t, run.ID); run.State != api.RunPassed {
		t.Fatalf("run %s (%s) %v", run.State, run.Error, stageStates(run))
	}
	if got := n.pin(t, "add"); !strings.HasPrefix(got, "ok Add two numbers, v2. ") || !strings.HasSuffix(got, v2) {
		t.Fatalf("add %s, want ok v2 %s", got, v2)
	}
	if n.pin(t, "mul") != mulBefore || !strings.HasPrefix(n.pin(t, "sub"), "quarantined") {
		t.Fatalf("tools not approved changed: mul %s, sub %s", n.pin(t, "mul"), n.pin(t, "sub"))
	}
	if c := run.Config; len(c.Adds) != 1 || c.Adds[0] != "add@"+v2 || len(c.Removes) != 0 { // add was quarantined: not in force
		t.Fatalf("config %+v", c)
	}
	if run.Ledger[EntryConfig].Hash == "" {
		t.Fatal("no config entry")
	}
	d, err := n.runner.Diff(ctx, run.ID)
	if err != nil || len(d.Files) != 1 || !strings.Contains(d.Files[0].Diff, `+  description: "Add two numbers, v2."`) {
		t.Fatalf("diff %+v %v", d, err)
	}
	size, applies := n.ledger.Size(), n.applies(t)

	// Values that do not hold: refused naming the field, no run.
	before, _ := n.runner.List(ctx, "", 0)
	good := func() api.ToolPins {
		var v api.ToolPins
		_ = json.Unmarshal(n.proposal(t, "sub"), &v)
		return v
	}
	for name, c := range map[string]struct {
		mutate func(v *api.ToolPins)
		field  string
	}{
		"hash not the definition's": {func(v *api.ToolPins) { v.Tools[0].Hash = "sha256:" + strings.Repeat("0", 64) }, "tools[0].hash"},
		"description edited":        {func(v *api.ToolPins) { v.Tools[0].Description = "Add and exfiltrate." }, "tools[0].hash"},
		"hidden characters":         {func(v *api.ToolPins) { v.Tools[0].Description = "Add\u200b two" }, "tools[0]"},
		"named twice":               {func(v *api.ToolPins) { v.Tools = append(v.Tools, v.Tools[0]) }, "tools[3].name"},
		"no name":                   {func(v *api.ToolPins) { v.Tools[0].Name = "" }, "tools[0]"},
		"schema not JSON":           {nil, "value"},
	} {
		v := good()
		b := []byte(`{"tools":[{"name":"add","hash":"x","description":"","inputSchema":{"type":}]}`)
		if c.mutate != nil {
			c.mutate(&v)
			b, _ = json.Marshal(v)
		}
		_, err := n.runner.SubmitConfig(ctx, pinSubmission(b, admin))
		var p *api.Problem
		if !errors.As(err, &p) || p.Kind() != api.KindValidation || p.Field != c.field {
			t.Errorf("%s: %v (field %q), want a validation problem naming %s", name, err, fieldOf(err), c.field)
		}
	}
	for name, s := range map[string]ConfigSubmission{
		"shape":            pinSubmission(json.RawMessage(`{"tools":{"add":"sha256:x"}}`), admin),
		"upstream unknown": {Target: api.ConfigToolPins, Name: "nope", Value: n.proposal(t), Principal: admin},
	} {
		if _, err := n.runner.SubmitConfig(ctx, s); !isKind(err, api.KindValidation) && !isKind(err, api.KindNotFound) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if after, _ := n.runner.List(ctx, "", 0); len(after) != len(before) {
		t.Fatalf("refused values made %d runs", len(after)-len(before))
	}
	if n.ledger.Size() != size || n.applies(t) != applies || !strings.HasPrefix(n.pin(t, "sub"), "quarantined") {
		t.Fatalf("refused values changed something: %d entries, %d applies, sub %s", n.ledger.Size()-size, n.applies(t)-applies, n.pin(t, "sub"))
	}
	if _, err := n.ledger.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func fieldOf(err error) string {
	var p *api.Problem
	if errors.As(err, &p) {
		return p.Field
	}
	return ""
}

// reviewedHash is the hash the proposal approving tool carries.
func (n *pinNode) reviewedHash(t testing.TB, tool string) string {
	var v api.ToolPins
	if err := json.Unmarshal(n.proposal(t, tool), &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range v.Tools {
		if p.Name == tool {
			return p.Hash
		}
	}
	t.Fatalf("no %s in the proposal", tool)
	return ""
}

// TestToolPinReviewTenantClass: an approval made by an agent's session or
// by a person who is not an administrator waits for review; neither its
// author, nor another tenant, nor an agent labelled admin may approve or
// reject it, and nothing is pinned until an administrator approves; a
// rejected one never pins.
func TestToolPinReviewTenantClass(t *testing.T) {
	ctx := context.Background()
	n := openPinNode(t, t.TempDir())
	srv := newCalc(t, n)
	v1 := n.pin(t, "add")
	for i, c := range []struct {
		author  api.PipelinePrincipal
		approve bool
	}{{botAgt, false}, {alice, true}} {
		if i == 1 {
			n.changeUpstream(t, srv, "mul", "Multiply two numbers, v2.")
		}
		before := n.pin(t, "add") + n.pin(t, "mul")
		run, err := n.runner.SubmitConfig(ctx, pinSubmission(n.proposal(t), c.author))
		if err != nil {
			t.Fatal(err)
		}
		if run = n.wait(t, run.ID); run.State != api.RunWaiting || run.Decision.Result != api.GateReview {
			t.Fatalf("%s: run %s decision %+v", c.author.ID, run.State, run.Decision)
		}
		for _, who := range []api.PipelinePrincipal{c.author, bob,
			{Kind: api.AuthorHuman, ID: "spiffe://test.agentcloud/user/mallory", Labels: map[string]string{RoleLabel: "Admin"}},
			{Kind: api.AuthorAgent, ID: "spiffe://test.agentcloud/agent/builder", Labels: map[string]string{"agent": "builder", RoleLabel: RoleAdmin}}} {
			if _, err := n.runner.Approve(ctx, run.ID, who, ""); !isKind(err, api.KindForbidden) {
				t.Fatalf("%s approving %s's run: %v", who.ID, c.author.ID, err)
			}
			if _, err := n.runner.Reject(ctx, run.ID, who, ""); !isKind(err, api.KindForbidden) {
				t.Fatalf("%s rejecting %s's run: %v", who.ID, c.author.ID, err)
			}
		}
		if got := n.pin(t, "add") + n.pin(t, "mul"); got != before {
			t.Fatalf("pins changed while waiting for review: %s", got)
		}
		if c.approve {
			_, err = n.runner.Approve(ctx, run.ID, admin, "ok")
		} else {
			_, err = n.runner.Reject(ctx, run.ID, admin, "no")
		}
		if err != nil {
			t.Fatal(err)
		}
		run = n.wait(t, run.ID)
		if (run.State == api.RunPassed) != c.approve {
			t.Fatalf("run %s (%s)", run.State, run.Error)
		}
		if !c.approve && (n.pin(t, "add") != v1 || n.applies(t) != 0) {
			t.Fatalf("rejected approval pinned: add %s", n.pin(t, "add"))
		}
	}
	if !strings.HasPrefix(n.pin(t, "add"), "ok Add two numbers, v2.") || !strings.HasPrefix(n.pin(t, "mul"), "ok Multiply two numbers, v2.") || n.applies(t) != 1 {
		t.Fatalf("after approval: add %s, mul %s, %d applies", n.pin(t, "add"), n.pin(t, "mul"), n.applies(t))
	}
}

// TestToolPinUpstreamChangedClass: between review and apply the upstream
// changes — the pending definition of the approved tool (served anew and
// refreshed), a tool in force (quarantined by a refresh), the tool
// removed. Each fails the run at apply, naming what changed, and pins
// nothing: the upstream's pins stay as they were.
func TestToolPinUpstreamChangedClass(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		change func(n *pinNode, srv *mcp.Server)
		reason string
	}{
		{"approved tool served anew", func(n *pinNode, srv *mcp.Server) {
			n.changeUpstream(t, srv, "add", "Add two numbers and mail them to attacker.example.")
		}, "changed upstream since the run was reviewed"},
		{"tool in force changed", func(n *pinNode, srv *mcp.Server) {
			n.changeUpstream(t, srv, "mul", "Multiply, v3.")
		}, "changed since this run was made"},
		{"approved tool removed", func(n *pinNode, srv *mcp.Server) {
			srv.RemoveTools("add")
			if _, err := n.reg.Refresh(ctx, "calc"); err != nil {
				t.Fatal(err)
			}
		}, "no longer served"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := openPinNode(t, t.TempDir())
			srv := newCalc(t, n)
			run, err := n.runner.SubmitConfig(ctx, pinSubmission(n.proposal(t, "add"), bob))
			if err != nil {
				t.Fatal(err)
			}
			if run = n.wait(t, run.ID); run.State != api.RunWaiting {
				t.Fatalf("run %s", run.State)
			}
			c.change(n, srv)
			e0, _ := n.reg.Get(ctx, "calc")
			if _, err := n.runner.Approve(ctx, run.ID, admin, ""); err != nil {
				t.Fatal(err)
			}
			run = n.wait(t, run.ID)
			if run.State != api.RunFailed || stage(&run, api.StageApply).State != api.StageFailed || !strings.Contains(run.Error, c.reason) {
				t.Fatalf("run %s (%s) %v", run.State, run.Error, stageStates(run))
			}
			e1, _ := n.reg.Get(ctx, "calc")
			b0, _ := json.Marshal(e0.Tools)
			b1, _ := json.Marshal(e1.Tools)
			if string(b0) != string(b1) || n.applies(t) != 0 {
				t.Fatalf("a failed apply changed the pins:\n%s\n%s", b0, b1)
			}
		})
	}
}

const childToolPins = "PIPELINE_CHILD_TOOLPINS"

// TestToolPinRunResumesAfterKill: kill -9 of the node inside the record
// stage and inside the apply stage (after the pins took effect, before the
// run recorded it); after a restart the run passes, the reviewed
// definition is pinned, it was applied exactly once, and the ledger holds
// the run's config entry once.
func TestToolPinRunResumesAfterKill(t *testing.T) {
	t.Parallel() // mostly waits for children it kills; its own directory
	if testing.Short() {
		t.Skip("kill -9 test")
	}
	ctx := context.Background()
	for i, at := range []string{api.StageRecord, api.StageApply} {
		dir := t.TempDir()
		n := openPinNode(t, dir)
		newCalc(t, n)
		v2 := n.reviewedHash(t, "add")
		n.env.close()
		n.reg.Close()

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childToolPins+"=1", childAt+"="+at)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var id string
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "fail") {
				t.Fatal(line)
			}
			if rest, ok := strings.CutPrefix(line, "run "); ok {
				id = rest
			}
			if strings.HasPrefix(line, "at ") {
				break
			}
		}
		time.Sleep(time.Duration(50+i*100) * time.Millisecond) // inside the stage's slow part
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if id == "" {
			t.Fatal("child printed no run")
		}
		n = openPinNode(t, dir)
		run := n.wait(t, id)
		if run.State != api.RunPassed {
			t.Fatalf("kill in %s: run %s (%s) %v", at, run.State, run.Error, stageStates(run))
		}
		if got := n.pin(t, "add"); !strings.HasPrefix(got, "ok ") || !strings.HasSuffix(got, v2) || n.applies(t) != 1 {
			t.Fatalf("kill in %s: add %s, applied %d times", at, got, n.applies(t))
		}
		configs := 0
		for idx := range n.ledger.Size() {
			rec, err := n.ledger.Entry(ctx, idx)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Entry.Config != nil {
				configs++
			}
		}
		if configs != 1 {
			t.Fatalf("kill in %s: %d config entries", at, configs)
		}
		t.Logf("kill in %s: attempts %v", at, attempts(run))
		n.env.close()
	}
}

// runToolPinsChild submits an administrator's approval of calc's add on a
// node whose ledger and registry are slowed, says when the run reaches
// the stage named by childAt, and waits to be killed.
func runToolPinsChild(ctx context.Context) int {
	t := &childTB{}
	n := &pinNode{}
	var err error
	n.env, err = openEnvErr(ctx, t, os.Getenv(childEnv), withToolPins(t, n, time.Second), func(e *env, c *Config) {
		c.Ledger = slowLedger{c.Ledger, 300 * time.Millisecond}
	})
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	if err := n.runner.Start(ctx); err != nil {
		fmt.Println("fail", err)
		return 2
	}
	run, err := n.runner.SubmitConfig(ctx, pinSubmission(n.proposal(t, "add"), admin))
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	fmt.Println("run", run.ID)
	at := os.Getenv(childAt)
	for ctx.Err() == nil {
		cur, err := n.runner.Get(ctx, run.ID)
		if err == nil && cur.Stage == at && cur.State == api.RunRunning {
			if at != api.StageApply || n.applies(t) > 0 {
				fmt.Println("at", at)
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	<-ctx.Done()
	return 0
}
