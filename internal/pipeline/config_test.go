package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// hostsTarget is a host-pattern list kept in the node's store, the shape
// of the trusted and private host lists: {"hosts": [...]}, canonical when
// sorted and deduplicated. Every Apply also writes an "applied.N" key, so
// a test counts how often a value was put in force. owner, when set, owns
// the list (like a secret's owner).
type hostsTarget struct {
	kv    store.KV
	owner string
	slow  time.Duration // sleep after Apply took effect (a kill lands there)
	// strict refuses every value once a run has been submitted (rules
	// that changed between submit and validate).
	strict atomic.Bool
	checks atomic.Int32
}

type hostsValue struct {
	Hosts []string `json:"hosts"`
}

func newHostsTarget(t testing.TB, st *store.Store, owner string) *hostsTarget {
	kv, err := st.KV(context.Background(), "test_config", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &hostsTarget{kv: kv, owner: owner}
}

func (h *hostsTarget) Check(_ context.Context, _ string, raw json.RawMessage) (ConfigValue, error) {
	if h.strict.Load() && bytes.Contains(raw, []byte("x.example.com")) {
		if h.checks.Add(1) > 1 {
			return ConfigValue{}, api.FieldErrorf(api.KindValidation, "hosts[0]", "x.example.com is no longer allowed")
		}
	}
	var v hostsValue
	if err := json.Unmarshal(raw, &v); err != nil {
		return ConfigValue{}, api.FieldErrorf(api.KindValidation, "hosts", "want {\"hosts\": [...]}: %v", err)
	}
	if len(v.Hosts) > 64 {
		return ConfigValue{}, api.FieldErrorf(api.KindValidation, "hosts", "%d hosts: at most 64", len(v.Hosts))
	}
	for i, x := range v.Hosts {
		if x == "" || len(x) > 253 || strings.ContainsAny(x, " /:@") {
			return ConfigValue{}, api.FieldErrorf(api.KindValidation, fmt.Sprintf("hosts[%d]", i), "%q is not a host pattern", clipText(x, 40))
		}
	}
	v.Hosts = sorted(v.Hosts)
	if v.Hosts == nil {
		v.Hosts = []string{}
	}
	b, _ := json.Marshal(v)
	return ConfigValue{Value: b, Items: v.Hosts, Text: strings.Join(v.Hosts, "\n") + "\n"}, nil
}

func (h *hostsTarget) Current(ctx context.Context, name string) (ConfigValue, string, bool, error) {
	e, err := h.kv.Get(ctx, "hosts")
	if errors.Is(err, store.ErrNotFound) {
		return ConfigValue{}, h.owner, false, nil
	}
	if err != nil {
		return ConfigValue{}, "", false, err
	}
	v, err := h.Check(ctx, name, e.Value)
	return v, h.owner, true, err
}

func (h *hostsTarget) Apply(ctx context.Context, _ string, value json.RawMessage, _ string) error {
	if _, err := h.kv.Put(ctx, "hosts", value); err != nil {
		return err
	}
	keys, _ := h.kv.Keys(ctx, "applied")
	if _, err := h.kv.Put(ctx, store.Key("applied", fmt.Sprint(len(keys))), value); err != nil {
		return err
	}
	time.Sleep(h.slow)
	return nil
}

// set writes the list directly (a change made outside the pipeline).
func (h *hostsTarget) set(t testing.TB, hosts ...string) {
	b, _ := json.Marshal(hostsValue{Hosts: sorted(hosts)})
	if _, err := h.kv.Put(context.Background(), "hosts", b); err != nil {
		t.Fatal(err)
	}
}

func (h *hostsTarget) hosts(t testing.TB) string {
	v, _, ok, err := h.Current(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "(none)"
	}
	return strings.Join(v.Items, ",")
}

func (h *hostsTarget) applies(t testing.TB) int {
	keys, err := h.kv.Keys(context.Background(), "applied")
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

var admin = api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "spiffe://test.agentcloud/admin", Labels: map[string]string{RoleLabel: RoleAdmin}}

// openConfigEnv opens a started node whose runner changes one host list
// ("trusted-hosts") owned by owner.
func openConfigEnv(t testing.TB, dir, owner string, opts ...envOption) (*env, *hostsTarget) {
	var ht *hostsTarget
	e := openEnv(t, dir, append([]envOption{func(e *env, c *Config) {
		ht = newHostsTarget(t, e.st, owner)
		c.Targets = map[string]ConfigTarget{api.ConfigTrustedHosts: ht}
	}}, opts...)...)
	e.start(t)
	return e, ht
}

func hostsJSON(hosts ...string) json.RawMessage {
	b, _ := json.Marshal(hostsValue{Hosts: hosts})
	return b
}

// TestConfigRunClass: an administrator's change of a host list goes
// validate → policy → review (skipped) → record → apply, is in force after
// and recorded (config ← policy in the ledger, which verifies); a value
// that fails validation fails the run at validate and changes nothing (the
// value, the ledger); malformed submissions are refused before a run.
func TestConfigRunClass(t *testing.T) {
	ctx := context.Background()
	e, ht := openConfigEnv(t, t.TempDir(), "")
	ht.set(t, "docs.example.com")

	run, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON("api.example.com", "docs.example.com"), Principal: admin})
	if err != nil {
		t.Fatal(err)
	}
	run = e.wait(t, run.ID)
	if run.State != api.RunPassed {
		t.Fatalf("run %s (%s) %v", run.State, run.Error, stageStates(run))
	}
	want := map[string]string{api.StageValidate: api.StagePassed, api.StageGate: api.StagePassed, api.StageReview: api.StageSkipped,
		api.StageRecord: api.StagePassed, api.StageApply: api.StagePassed}
	if got := stageStates(run); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
	if got := ht.hosts(t); got != "api.example.com,docs.example.com" {
		t.Fatalf("hosts %s", got)
	}
	if c := run.Config; c == nil || !slices.Equal(c.Adds, []string{"api.example.com"}) || c.Parent == "" || c.Digest == c.Parent {
		t.Fatalf("config %+v", run.Config)
	}
	h, _ := ledger.ParseHash(run.Ledger[EntryPolicy].Hash)
	trail, err := e.ledger.Why(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range trail.Records {
		kinds = append(kinds, string(r.Entry.Type))
	}
	if got := strings.Join(kinds, ","); got != "policy,config" {
		t.Fatalf("trail %s", got)
	}
	d, err := e.runner.Diff(ctx, run.ID)
	if err != nil || len(d.Files) != 1 || !strings.Contains(d.Files[0].Diff, "+api.example.com") {
		t.Fatalf("diff %+v %v", d, err)
	}
	size := e.ledger.Size()

	// Values that fail validation: refused naming the field, no run, nothing changes.
	before, _ := e.runner.List(ctx, "", 0)
	for _, bad := range []json.RawMessage{hostsJSON("ok.example.com", "bad host"), json.RawMessage(`{"hosts": "x"}`),
		json.RawMessage(`[1,2]`), hostsJSON(strings.Repeat("a", 300)), hostsJSON(slices.Repeat([]string{"h.example"}, 65)...)} {
		_, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: bad, Principal: admin})
		var p *api.Problem
		if !errors.As(err, &p) || p.Kind() != api.KindValidation || !strings.HasPrefix(p.Field, "hosts") {
			t.Fatalf("%.60s: %v, want a validation problem naming hosts", bad, err)
		}
		if got := ht.hosts(t); got != "api.example.com,docs.example.com" {
			t.Fatalf("%.60s: hosts %s", bad, got)
		}
	}
	if ht.applies(t) != 1 || e.ledger.Size() != size {
		t.Fatalf("refused values applied %d times / appended %d entries", ht.applies(t)-1, e.ledger.Size()-size)
	}
	// A value that passed at submit but fails on the node that runs it
	// (the rules changed) fails the run at validate, naming the field.
	ht.strict.Store(true)
	run, err = e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON("x.example.com"), Principal: admin})
	if err != nil {
		t.Fatal(err)
	}
	run = e.wait(t, run.ID)
	ht.strict.Store(false)
	if run.State != api.RunFailed || stage(&run, api.StageValidate).State != api.StageFailed || !strings.Contains(run.Error, "field hosts") {
		t.Fatalf("run %s (%s) %v", run.State, run.Error, stageStates(run))
	}
	if ht.applies(t) != 1 || e.ledger.Size() != size || ht.hosts(t) != "api.example.com,docs.example.com" {
		t.Fatalf("a run failed at validate changed something: %d applies, %d entries", ht.applies(t), e.ledger.Size()-size)
	}
	before = append(before, run)

	// Malformed submissions: refused, no run.
	for name, s := range map[string]ConfigSubmission{
		"unknown target": {Target: "firewall", Value: hostsJSON(), Principal: admin},
		"not JSON":       {Target: api.ConfigTrustedHosts, Value: json.RawMessage(`{"hosts":`), Principal: admin},
		"oversized":      {Target: api.ConfigTrustedHosts, Value: json.RawMessage(`"` + strings.Repeat("x", MaxConfigValue) + `"`), Principal: admin},
		"bad name":       {Target: api.ConfigTrustedHosts, Name: "a:b", Value: hostsJSON(), Principal: admin},
		"no principal":   {Target: api.ConfigTrustedHosts, Value: hostsJSON()},
		"long message":   {Target: api.ConfigTrustedHosts, Value: hostsJSON(), Principal: admin, Message: strings.Repeat("m", MaxMessage+1)},
	} {
		if _, err := e.runner.SubmitConfig(ctx, s); !isKind(err, api.KindValidation) {
			t.Errorf("%s: %v, want a validation problem", name, err)
		}
	}
	if after, _ := e.runner.List(ctx, "", 0); len(after) != len(before) {
		t.Fatalf("refused submissions made %d runs", len(after)-len(before))
	}
	if _, err := e.ledger.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConfigReviewTenantClass: a change by someone who is not an
// administrator (the list's owner adding a host, an agent's session)
// waits for review; neither its author, nor another tenant, nor an agent
// may approve it, and the value stays as it was until an administrator
// does; a rejected change never applies; an owner taking a host away
// needs nobody.
func TestConfigReviewTenantClass(t *testing.T) {
	ctx := context.Background()
	e, ht := openConfigEnv(t, t.TempDir(), alice.ID)
	ht.set(t, "a.example.com", "b.example.com")
	for _, c := range []struct {
		name    string
		author  api.PipelinePrincipal
		hosts   []string
		approve bool
		want    string
	}{
		{"owner adds a host, approved", alice, []string{"a.example.com", "b.example.com", "c.example.com"}, true, "a.example.com,b.example.com,c.example.com"},
		{"session adds a host, rejected", botAgt, []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com"}, false, "a.example.com,b.example.com,c.example.com"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := ht.hosts(t)
			run, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts,
				Value: hostsJSON(c.hosts...), Principal: c.author})
			if err != nil {
				t.Fatal(err)
			}
			run = e.wait(t, run.ID)
			if run.State != api.RunWaiting || run.Decision.Result != api.GateReview || !slices.Contains(run.Decision.Reasons, "config-by-non-admin") {
				t.Fatalf("run %s decision %+v", run.State, run.Decision)
			}
			for _, who := range []api.PipelinePrincipal{c.author, bob,
				{Kind: api.AuthorHuman, ID: "spiffe://test.agentcloud/user/mallory", Labels: map[string]string{RoleLabel: "admin "}},
				{Kind: api.AuthorAgent, ID: "spiffe://test.agentcloud/agent/builder", Labels: map[string]string{"agent": "builder", RoleLabel: RoleAdmin}}} {
				if _, err := e.runner.Approve(ctx, run.ID, who, ""); !isKind(err, api.KindForbidden) {
					t.Fatalf("%s approving: %v", who.ID, err)
				}
				if _, err := e.runner.Reject(ctx, run.ID, who, ""); !isKind(err, api.KindForbidden) {
					t.Fatalf("%s rejecting: %v", who.ID, err)
				}
			}
			if got := ht.hosts(t); got != before {
				t.Fatalf("hosts %s while waiting for review", got)
			}
			if c.approve {
				_, err = e.runner.Approve(ctx, run.ID, admin, "ok")
			} else {
				_, err = e.runner.Reject(ctx, run.ID, admin, "no")
			}
			if err != nil {
				t.Fatal(err)
			}
			run = e.wait(t, run.ID)
			if (run.State == api.RunPassed) != c.approve {
				t.Fatalf("run %s (%s)", run.State, run.Error)
			}
			if got := ht.hosts(t); got != c.want {
				t.Fatalf("hosts %s, want %s", got, c.want)
			}
			if c.approve && run.Ledger[EntryApproval].Hash == "" {
				t.Fatal("approval not recorded")
			}
		})
	}
	// The owner narrowing their own list needs nobody.
	run, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON("a.example.com"), Principal: alice})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunPassed || ht.hosts(t) != "a.example.com" {
		t.Fatalf("narrowing: run %s (%s), hosts %s", run.State, run.Error, ht.hosts(t))
	}
	// Another tenant narrowing it does need review.
	run, err = e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON(), Principal: bob})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunWaiting {
		t.Fatalf("another tenant's change: run %s", run.State)
	}
	// One run per target: a second is a conflict naming the first.
	if _, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON(), Principal: admin}); !isKind(err, api.KindConflict) || !strings.Contains(err.Error(), run.ID) {
		t.Fatalf("second run: %v", err)
	}
}

// TestConfigChangedMeanwhileClass: a change approved after the value was
// changed by other means fails at apply and leaves that value in force;
// a cancelled change never applies.
func TestConfigChangedMeanwhileClass(t *testing.T) {
	ctx := context.Background()
	e, ht := openConfigEnv(t, t.TempDir(), "")
	ht.set(t, "a.example.com")
	run, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON("a.example.com", "b.example.com"), Principal: bob})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunWaiting {
		t.Fatalf("run %s", run.State)
	}
	ht.set(t, "z.example.com")
	if _, err := e.runner.Approve(ctx, run.ID, admin, ""); err != nil {
		t.Fatal(err)
	}
	run = e.wait(t, run.ID)
	if run.State != api.RunFailed || stage(&run, api.StageApply).State != api.StageFailed || !strings.Contains(run.Error, "changed since") {
		t.Fatalf("run %s (%s) %v", run.State, run.Error, stageStates(run))
	}
	if got := ht.hosts(t); got != "z.example.com" || ht.applies(t) != 0 {
		t.Fatalf("hosts %s, %d applies", got, ht.applies(t))
	}
	run, err = e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON("y.example.com"), Principal: bob})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(t, run.ID)
	if _, err := e.runner.Cancel(ctx, run.ID, bob); err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunCancelled || ht.hosts(t) != "z.example.com" {
		t.Fatalf("cancelled: run %s, hosts %s", run.State, ht.hosts(t))
	}
}

const childConfig = "PIPELINE_CHILD_CONFIG"

// TestConfigRunResumesAfterKill: kill -9 of the node inside the record
// stage and inside the apply stage (after the value took effect, before
// the run recorded it); after a restart the run passes, the value was put
// in force exactly once, and the ledger holds its config entry once.
func TestConfigRunResumesAfterKill(t *testing.T) {
	t.Parallel() // mostly waits for children it kills; its own directory
	if testing.Short() {
		t.Skip("kill -9 test")
	}
	for i, at := range []string{api.StageRecord, api.StageApply} {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childConfig+"=1", childAt+"="+at)
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
		e, ht := openConfigEnv(t, dir, "")
		run := e.wait(t, id)
		if run.State != api.RunPassed {
			t.Fatalf("kill in %s: run %s (%s) %v", at, run.State, run.Error, stageStates(run))
		}
		if got, n := ht.hosts(t), ht.applies(t); got != "a.example.com,b.example.com" || n != 1 {
			t.Fatalf("kill in %s: hosts %s applied %d times", at, got, n)
		}
		configs := 0
		for idx := range e.ledger.Size() {
			rec, err := e.ledger.Entry(context.Background(), idx)
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
		e.close()
	}
}

// runConfigChild submits an administrator's host-list change on a node
// whose ledger and target are slowed, says when the run reaches the stage
// named by childAt, and waits to be killed.
func runConfigChild(ctx context.Context) int {
	t := &childTB{}
	var ht *hostsTarget
	e, err := openEnvErr(ctx, t, os.Getenv(childEnv), func(e *env, c *Config) {
		ht = newHostsTarget(t, e.st, "")
		ht.slow = time.Second
		c.Targets = map[string]ConfigTarget{api.ConfigTrustedHosts: ht}
		c.Ledger = slowLedger{c.Ledger, 300 * time.Millisecond}
	})
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	if err := e.runner.Start(ctx); err != nil {
		fmt.Println("fail", err)
		return 2
	}
	run, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON("b.example.com", "a.example.com"), Principal: admin})
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	fmt.Println("run", run.ID)
	at := os.Getenv(childAt)
	for ctx.Err() == nil {
		cur, err := e.runner.Get(ctx, run.ID)
		if err == nil && cur.Stage == at && cur.State == api.RunRunning {
			if at != api.StageApply || ht.applies(t) > 0 { // apply: once the value took effect
				fmt.Println("at", at)
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	<-ctx.Done()
	return 0
}

// TestWaitAcrossNodesClass: Wait and the run's events are told of changes
// rather than polling for them. On the node that drives a run its own
// events wake the waiters; a second node on the same store that drives
// nothing (it was not started) sees the run pass through a watch of the
// run's key — for a run in apply when it starts waiting, and for one that
// ended before it did.
func TestWaitAcrossNodesClass(t *testing.T) {
	ctx := context.Background()
	e, ht := openConfigEnv(t, t.TempDir(), "")
	ht.slow = 500 * time.Millisecond
	other, err := New(ctx, Config{Store: e.st, Versions: e.sessions, Gate: e.gate, Reviews: e.reviews, Signer: KeySigner{Key: e.key},
		Ledger: e.ledger, Rollout: SwitchRollout{Switcher: e.sessions}, Builder: "spiffe://test.agentcloud/node/n2", BuilderVersion: "test",
		Targets: map[string]ConfigTarget{api.ConfigTrustedHosts: ht}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 3 {
		run, err := e.runner.SubmitConfig(ctx, ConfigSubmission{Target: api.ConfigTrustedHosts, Value: hostsJSON(fmt.Sprintf("h%d.example.com", i)), Principal: bob})
		if err != nil {
			t.Fatal(err)
		}
		if run = e.wait(t, run.ID); run.State != api.RunWaiting {
			t.Fatalf("run %s", run.State)
		}
		if _, err := e.runner.Approve(ctx, run.ID, admin, ""); err != nil {
			t.Fatal(err)
		}
		if i == 2 { // ended before the other node waits
			e.wait(t, run.ID)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		got, err := other.Wait(wctx, run.ID)
		local, lerr := e.runner.Wait(wctx, run.ID)
		cancel()
		if err != nil || got.State != api.RunPassed || lerr != nil || local.State != api.RunPassed {
			t.Fatalf("run %d: the other node saw %s (%v), this node %s (%v)", i, got.State, err, local.State, lerr)
		}
	}
	if got := ht.hosts(t); got != "h2.example.com" {
		t.Fatalf("hosts %s", got)
	}
}
