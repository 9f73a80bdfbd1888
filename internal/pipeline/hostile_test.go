package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
)

// noisyTester reports n passing tests, each with a long name: more log
// lines than a stage may keep.
type noisyTester struct{ n int }

func (t noisyTester) Test(_ context.Context, in TestInput) (api.PipelineTestReport, error) {
	f := api.PipelineTestFile{File: "tests/noise.test.js"}
	for i := range t.n {
		f.Tests = append(f.Tests, api.PipelineTestCase{Name: fmt.Sprintf("case %d %s", i, strings.Repeat("é", 100)), Result: api.TestPassed})
	}
	return api.PipelineTestReport{Passed: true, Files: []api.PipelineTestFile{f}}, nil
}

// TestStageLogBounded: a stage that logs more than its limit keeps the
// limit's worth (cut on a character boundary) and counts the rest.
func TestStageLogBounded(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir(), func(_ *env, c *Config) { c.Tester = noisyTester{2000}; c.MaxStageLog = 4096 })
	e.start(t)
	run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "noisy", "v1", nil, nil), Principal: alice})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunPassed {
		t.Fatalf("%s %s", run.State, run.Error)
	}
	st := stage(&run, api.StageTest)
	if st.LogBytes > 4096 || st.LogDropped == 0 {
		t.Fatalf("test stage logged %d bytes, dropped %d", st.LogBytes, st.LogDropped)
	}
	evs, _, err := e.runner.Events(ctx, run.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ev := range evs {
		if ev.Type == api.EventLog && ev.Stage == api.StageTest {
			total += len(ev.Message)
			if !validUTF8(ev.Message) {
				t.Fatalf("log line cut inside a character: %q", ev.Message)
			}
		}
	}
	if total > 4096 {
		t.Fatalf("%d bytes of test logs kept", total)
	}
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestCancelMidStageKeepsOldVersion: a run cancelled while its tests run
// ends cancelled at once (the stage is interrupted), and the old version
// keeps serving; a cancelled run cannot be cancelled or approved again.
func TestCancelMidStageKeepsOldVersion(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir(), func(_ *env, c *Config) { c.Tester = slowTester{time.Hour} })
	e.start(t)
	e.runner.cfg.Tester = nil // the first release skips tests
	run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "keep", "v1", nil, nil), Principal: alice})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunPassed {
		t.Fatalf("v1: %s %s", run.State, run.Error)
	}
	e.runner.cfg.Tester = slowTester{time.Hour}
	run, err = e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "keep", "v2", nil, nil), Principal: alice})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		cur, _ := e.runner.Get(ctx, run.ID)
		if st := stage(&cur, api.StageTest); st.State == api.StageRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("test stage never ran")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.runner.Cancel(ctx, run.ID, bob); err != nil {
		t.Fatal(err)
	}
	run = e.wait(t, run.ID)
	if run.State != api.RunCancelled || stage(&run, api.StageTest).State != api.StageCancelled || stage(&run, api.StageRollout).State != api.StageSkipped {
		t.Fatalf("run %s %v", run.State, stageStates(run))
	}
	if got := e.serving(t, "keep"); got != "hello v1" {
		t.Fatalf("serving %q after cancel", got)
	}
	if _, err := e.runner.Cancel(ctx, run.ID, bob); !isKind(err, api.KindConflict) {
		t.Fatalf("second cancel: %v", err)
	}
}

// TestTestStageTimeLimit: a tester that never returns is stopped by the
// stage's time limit; the run fails saying so.
func TestTestStageTimeLimit(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir(), func(_ *env, c *Config) { c.Tester = slowTester{time.Hour}; c.TestTimeout = 300 * time.Millisecond })
	e.start(t)
	run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "slow", "v1", nil, nil), Principal: alice})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunFailed || !strings.Contains(run.Error, "time limit") {
		t.Fatalf("%s %q", run.State, run.Error)
	}
	if _, ok, _ := e.sessions.CurrentVersion(ctx, "slow"); ok {
		t.Fatal("a failed first release made the agent current")
	}
}

// TestGateDecisionsClass: the default release policies, case by case.
func TestGateDecisionsClass(t *testing.T) {
	ctx := context.Background()
	owner := "spiffe://t/user/alice"
	g, err := NewCedarGate(nil, func(context.Context, string) (string, error) { return owner, nil })
	if err != nil {
		t.Fatal(err)
	}
	human := api.PipelinePrincipal{Kind: api.AuthorHuman, ID: owner}
	other := api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "spiffe://t/user/carol"}
	agent := api.PipelinePrincipal{Kind: api.AuthorAgent, ID: "spiffe://t/agent/a"}
	admin := api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "admin", Labels: map[string]string{RoleLabel: RoleAdmin}}
	// Only a person can be an administrator: the label on an agent counts for nothing.
	fakeAdmin := api.PipelinePrincipal{Kind: api.AuthorAgent, ID: "spiffe://t/agent/a", Labels: map[string]string{RoleLabel: RoleAdmin}}
	pass := &api.PipelineTestSummary{Passed: true, Total: 2}
	fail := &api.PipelineTestSummary{Passed: false, Total: 2, Failed: 1}
	plain := &api.PipelineChange{Limits: api.PipelineLimit{MemoryMiB: 64}, ParentLimits: api.PipelineLimit{MemoryMiB: 64}}
	cases := []struct {
		name   string
		who    api.PipelinePrincipal
		change *api.PipelineChange
		tests  *api.PipelineTestSummary
		want   string
		reason string
	}{
		{"owner, plain change", human, plain, pass, api.GateAllow, "release-permit"},
		{"owner, failing tests", human, plain, fail, api.GateDeny, "release-tests-failed"},
		{"agent, failing tests", agent, plain, fail, api.GateDeny, "release-tests-failed"},
		{"agent, plain change", agent, plain, pass, api.GateReview, "release-by-agent"},
		{"non-owner", other, plain, pass, api.GateReview, "release-by-non-owner"},
		{"owner adds host", human, &api.PipelineChange{NewHosts: []string{"x.example"}}, pass, api.GateReview, "release-new-capability"},
		{"owner adds secret", human, &api.PipelineChange{NewSecrets: []string{"k"}}, pass, api.GateReview, "release-new-capability"},
		{"owner adds tool", human, &api.PipelineChange{NewTools: []string{"t"}}, pass, api.GateReview, "release-new-capability"},
		{"owner raises memory", human, &api.PipelineChange{Limits: api.PipelineLimit{MemoryMiB: 128}, ParentLimits: api.PipelineLimit{MemoryMiB: 64}}, pass, api.GateReview, "release-new-capability"},
		{"admin adds host", admin, &api.PipelineChange{NewHosts: []string{"x.example"}}, pass, api.GateAllow, "release-permit"},
		{"admin, failing tests", admin, plain, fail, api.GateDeny, "release-tests-failed"},
		{"agent labelled admin adds host", fakeAdmin, &api.PipelineChange{NewHosts: []string{"x.example"}}, pass, api.GateReview, "release-by-agent"},
	}
	for _, c := range cases {
		run := api.PipelineRun{ID: "run-x", Agent: "a", Principal: c.who, Change: c.change, Tests: c.tests}
		d, err := g.Decide(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		if d.Result != c.want || !strings.Contains(strings.Join(d.Reasons, ","), c.reason) || !strings.HasPrefix(d.PolicySetDigest, "sha256:") || !strings.HasPrefix(d.InputDigest, "sha256:") {
			t.Errorf("%s: %+v, want %s (%s)", c.name, d, c.want, c.reason)
		}
	}
	// Approvals: people other than the author.
	run := api.PipelineRun{ID: "run-x", Agent: "a", Principal: agent, Change: plain, Tests: pass}
	if err := g.MayApprove(ctx, human, run); err != nil {
		t.Errorf("owner approving an agent's change: %v", err)
	}
	for _, who := range []api.PipelinePrincipal{agent, {Kind: api.AuthorSession, ID: "spiffe://t/agent/a/session/s"}} {
		if err := g.MayApprove(ctx, who, run); !isKind(err, api.KindForbidden) {
			t.Errorf("%s approving: %v", who.ID, err)
		}
	}
	run.Principal = human
	if err := g.MayApprove(ctx, human, run); !isKind(err, api.KindForbidden) {
		t.Errorf("author approving own change: %v", err)
	}
	// Replaced policies: an operator can let agents release plain changes.
	if err := g.Set([]byte(`@id("all") permit (principal, action, resource);`)); err != nil {
		t.Fatal(err)
	}
	run.Principal = agent
	if d, _ := g.Decide(ctx, run); d.Result != api.GateAllow {
		t.Errorf("replaced policies: %+v", d)
	}
	for _, bad := range []string{`permit (`, `@id("a") permit (principal, action, resource); @id("a") permit (principal, action, resource);`,
		`@review("true") permit (principal, action, resource);`} {
		if err := g.Set([]byte(bad)); !isKind(err, api.KindValidation) {
			t.Errorf("Set(%q) = %v", bad, err)
		}
	}
}

// FuzzReleasePolicies: any policy text is accepted or refused with a
// validation problem, and a gate over accepted text decides without
// panicking.
func FuzzReleasePolicies(f *testing.F) {
	f.Add(string(DefaultReleasePolicies()))
	f.Add(`@id("x") @review("true") forbid (principal, action, resource) when { context.new_hosts.contains("a") };`)
	f.Add(`permit (principal, action, resource) when { context.nope.deeper };`)
	f.Fuzz(func(t *testing.T, src string) {
		g, err := NewCedarGate([]byte(src), nil)
		if err != nil {
			if !isKind(err, api.KindValidation) {
				t.Fatalf("error %v is not a validation problem", err)
			}
			return
		}
		d, err := g.Decide(context.Background(), api.PipelineRun{ID: "run-x", Agent: "a", Principal: alice})
		if err != nil || (d.Result != api.GateAllow && d.Result != api.GateReview && d.Result != api.GateDeny) {
			t.Fatalf("Decide = %+v, %v", d, err)
		}
	})
}

// FuzzFileDiffs: any two file sets diff without panicking, every diff is
// within its limit, and statuses are consistent.
func FuzzFileDiffs(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n", []byte{0, 1})
	f.Add("", "x", []byte("é"))
	f.Fuzz(func(t *testing.T, a, b string, bin []byte) {
		pa := &bundle.Bundle{Files: map[string][]byte{"f.js": []byte(a), "bin": bin, "gone.txt": []byte(a)}}
		pb := &bundle.Bundle{Files: map[string][]byte{"f.js": []byte(b), "bin": append([]byte{0}, bin...), "new.txt": []byte(b)}}
		for _, d := range FileDiffs(pa, pb) {
			if len(d.Diff) > MaxFileDiffBytes {
				t.Fatalf("%s: %d bytes", d.Path, len(d.Diff))
			}
			switch d.Path {
			case "gone.txt":
				if d.Status != api.DiffRemoved {
					t.Fatalf("gone.txt %s", d.Status)
				}
			case "new.txt":
				if d.Status != api.DiffAdded {
					t.Fatalf("new.txt %s", d.Status)
				}
			}
		}
	})
}

// TestReviewResolvedElsewhereClass: an approval resolved through the
// approvals store (the /v1/approvals route) rather than Approve moves the
// run on: approved by a person it releases; resolved by the author it
// fails (an author never reviews their own change).
func TestReviewResolvedElsewhereClass(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir(), func(_ *env, c *Config) { c.ReviewPoll = 50 * time.Millisecond })
	e.start(t)
	for i, c := range []struct {
		by   string
		want string
	}{{bob.ID, api.RunPassed}, {botAgt.ID, api.RunFailed}} {
		run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "elsewhere", fmt.Sprintf("v%d", i), nil, nil), Principal: botAgt})
		if err != nil {
			t.Fatal(err)
		}
		run = e.wait(t, run.ID)
		if run.State != api.RunWaiting {
			t.Fatalf("run %s %s", run.State, run.Error)
		}
		if _, err := e.reviews.Resolve(ctx, run.Review.Approval, true, c.by); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for !run.Terminal() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			run, _ = e.runner.Get(ctx, run.ID)
		}
		if run.State != c.want {
			t.Fatalf("resolved by %s: %s (%s), want %s", c.by, run.State, run.Error, c.want)
		}
	}
}
