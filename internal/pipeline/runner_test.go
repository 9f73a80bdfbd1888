package pipeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline/provenance"
)

func isKind(err error, k api.Kind) bool {
	var p *api.Problem
	return errors.As(err, &p) && p.Kind() == k
}

// TestRunReleasesOwnerChange: a person's first release and their next
// change with no new capability go through every stage without review;
// the version serves, the provenance verifies offline, and the ledger
// chain change → test → policy → provenance walks back from the end.
func TestRunReleasesOwnerChange(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir())
	e.start(t)
	for i, v := range []string{"v1", "v2"} {
		run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "hello", v, nil, nil), Principal: alice, Message: "ship " + v})
		if err != nil {
			t.Fatal(err)
		}
		run = e.wait(t, run.ID)
		if run.State != api.RunPassed {
			t.Fatalf("%s: run %s: %s (%v)", v, run.State, run.Error, stageStates(run))
		}
		if got := stageStates(run); got[api.StageReview] != api.StageSkipped || got[api.StageRollout] != api.StagePassed || got[api.StageTest] != api.StageSkipped {
			t.Fatalf("%s stages: %v", v, got)
		}
		if i == 0 && !run.Change.FirstRelease {
			t.Fatal("first release not marked")
		}
		if i == 1 && run.Parent == "" {
			t.Fatal("second run has no parent")
		}
		if got := e.serving(t, "hello"); got != "hello "+v {
			t.Fatalf("serving %q, want hello %s", got, v)
		}
		prov, err := e.runner.Provenance(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		ver, err := provenance.Verify(ctx, prov.Envelope, []byte(prov.PublicKey))
		if err != nil || ver.Subject != run.Bundle || ver.Digest != run.Provenance {
			t.Fatalf("provenance: %+v %v", ver, err)
		}
		ref := run.Ledger[EntryProvenance]
		h, _ := ledger.ParseHash(ref.Hash)
		trail, err := e.ledger.Why(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, r := range trail.Records {
			kinds = append(kinds, string(r.Entry.Type))
		}
		if got := strings.Join(kinds, ","); !strings.Contains(got, "provenance") || !strings.Contains(got, "policy") || !strings.Contains(got, "change") {
			t.Fatalf("trail %s", got)
		}
		evs, _, err := e.runner.Events(ctx, run.ID, 0, 0)
		if err != nil || len(evs) < 8 {
			t.Fatalf("events %d %v", len(evs), err)
		}
	}
}

// TestAgentChangeNeedsReviewClass: a change made by an agent, or one that
// adds an egress host, waits for review with the old version serving; the
// author, the agent itself and other agents cannot approve it; a person
// can; a rejection or a cancel leaves the old version serving.
func TestAgentChangeNeedsReviewClass(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir())
	e.start(t)
	run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "builder", "v1", nil, nil), Principal: alice})
	if err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunPassed {
		t.Fatalf("first release: %s %s", run.State, run.Error)
	}
	cases := []struct {
		name      string
		author    api.PipelinePrincipal
		egress    []string
		reasons   string
		decide    func(id string) error
		wantState string
		serving   string
	}{
		{"agent change approved", botAgt, nil, "release-by-agent", func(id string) error {
			_, err := e.runner.Approve(ctx, id, bob, "lgtm")
			return err
		}, api.RunPassed, "hello v2"},
		{"owner adds host, rejected", alice, []string{"api.example.com"}, "release-new-capability", func(id string) error {
			_, err := e.runner.Reject(ctx, id, bob, "no")
			return err
		}, api.RunFailed, "hello v2"},
		{"agent adds host, cancelled", botAgt, []string{"api.example.com"}, "release-by-agent", func(id string) error {
			_, err := e.runner.Cancel(ctx, id, alice)
			return err
		}, api.RunCancelled, "hello v2"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "builder", fmt.Sprintf("v%d", i+2), c.egress, nil), Principal: c.author})
			if err != nil {
				t.Fatal(err)
			}
			run = e.wait(t, run.ID)
			if run.State != api.RunWaiting || run.Decision == nil || run.Decision.Result != api.GateReview || !strings.Contains(strings.Join(run.Decision.Reasons, ","), c.reasons) {
				t.Fatalf("run %s decision %+v", run.State, run.Decision)
			}
			before := e.serving(t, "builder")
			for _, who := range []api.PipelinePrincipal{c.author,
				{Kind: api.AuthorAgent, ID: "spiffe://test.agentcloud/agent/builder", Labels: map[string]string{"agent": "builder"}},
				{Kind: api.AuthorAgent, ID: "spiffe://test.agentcloud/agent/other", Labels: map[string]string{"agent": "other"}}} {
				if _, err := e.runner.Approve(ctx, run.ID, who, ""); !isKind(err, api.KindForbidden) {
					t.Fatalf("%s approving: %v", who.ID, err)
				}
			}
			if err := c.decide(run.ID); err != nil {
				t.Fatal(err)
			}
			run = e.wait(t, run.ID)
			if run.State != c.wantState {
				t.Fatalf("run %s (%s), want %s", run.State, run.Error, c.wantState)
			}
			if c.wantState == api.RunPassed {
				if run.Ledger[EntryApproval].Hash == "" {
					t.Fatal("approval not recorded in the ledger")
				}
				// The chain from the provenance back to the change, through
				// the approval, verifies; so does the whole ledger.
				h, _ := ledger.ParseHash(run.Ledger[EntryProvenance].Hash)
				trail, err := e.ledger.Why(ctx, h)
				if err != nil {
					t.Fatal(err)
				}
				var kinds []string
				for _, r := range trail.Records {
					kinds = append(kinds, string(r.Entry.Type))
				}
				if got := strings.Join(kinds, ","); got != "provenance,approval,policy,test,change" {
					t.Fatalf("trail %s", got)
				}
				if _, err := e.ledger.Verify(ctx); err != nil {
					t.Fatalf("ledger verify: %v", err)
				}
			} else if got := e.serving(t, "builder"); got != before {
				t.Fatalf("serving %q after %s, want %q", got, run.State, before)
			}
			if got := e.serving(t, "builder"); got != c.serving {
				t.Fatalf("serving %q, want %q", got, c.serving)
			}
			if _, err := e.runner.Approve(ctx, run.ID, bob, ""); !isKind(err, api.KindConflict) {
				t.Fatalf("approving an ended run: %v", err)
			}
		})
	}
}

// TestRunsForOneAgentRace: two runs for one agent submitted at once: one is
// admitted, the other is a conflict naming it; after the first ends, the
// next is admitted; a stale parent fails at release without moving the
// pointer.
func TestRunsForOneAgentRace(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir())
	e.start(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok []api.PipelineRun
	var conflicts int
	for i := range 4 {
		wg.Go(func() {
			run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "race", fmt.Sprintf("r%d", i), nil, nil), Principal: botAgt})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok = append(ok, run)
			case isKind(err, api.KindConflict):
				conflicts++
			default:
				t.Errorf("submit: %v", err)
			}
		})
	}
	wg.Wait()
	if len(ok) != 1 || conflicts != 3 {
		t.Fatalf("admitted %d, conflicts %d", len(ok), conflicts)
	}
	run := e.wait(t, ok[0].ID)
	if _, err := e.runner.Cancel(ctx, run.ID, alice); err != nil {
		t.Fatal(err)
	}
	if run = e.wait(t, run.ID); run.State != api.RunCancelled {
		t.Fatalf("cancel: %s", run.State)
	}
	if _, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "race", "next", nil, nil), Principal: alice}); err != nil {
		t.Fatalf("submit after the active run ended: %v", err)
	}
}

// TestClaimWithoutRecordClass: a claim whose run record is not written yet
// holds for claimGrace (a Submit between claim and record), so a second
// Submit is a conflict; a claim left by a crash before its record (older
// than claimGrace) and an unreadable holder do not block the agent.
func TestClaimWithoutRecordClass(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir())
	e.start(t)
	for i, c := range []struct {
		name  string
		value []byte
		admit bool
	}{
		{"being admitted", claimValue(newRunID(), time.Now()), false},
		{"left by a crash", claimValue(newRunID(), time.Now().Add(-2*claimGrace)), true},
		{"garbage holder", []byte("not a run id"), true},
		{"old format", []byte(newRunID()), true},
	} {
		agent := fmt.Sprintf("claim%d", i)
		if _, err := e.runner.kv.Put(ctx, activeKey(agent), c.value); err != nil {
			t.Fatal(err)
		}
		run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, agent, "v1", nil, nil), Principal: alice})
		if c.admit && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.admit && !isKind(err, api.KindConflict) {
			t.Errorf("%s: got %v, want a conflict", c.name, err)
		}
		if err == nil {
			e.wait(t, run.ID)
		}
	}
}

// TestRunInputRefusedClass: bad submissions and reviews are 4xx problems
// naming the field.
func TestRunInputRefusedClass(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir())
	e.start(t)
	b := helloBundle(t, "input", "v1", nil, nil)
	for name, s := range map[string]Submission{
		"no bundle":  {Principal: alice},
		"no kind":    {Bundle: b, Principal: api.PipelinePrincipal{ID: "x"}},
		"bad kind":   {Bundle: b, Principal: api.PipelinePrincipal{Kind: "robot", ID: "x"}},
		"no id":      {Bundle: b, Principal: api.PipelinePrincipal{Kind: api.AuthorHuman}},
		"long id":    {Bundle: b, Principal: api.PipelinePrincipal{Kind: api.AuthorHuman, ID: strings.Repeat("x", 600)}},
		"long msg":   {Bundle: b, Principal: alice, Message: strings.Repeat("m", MaxMessage+1)},
		"big labels": {Bundle: b, Principal: api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "x", Labels: map[string]string{"k": strings.Repeat("v", 300)}}},
	} {
		if _, err := e.runner.Submit(ctx, s); !isKind(err, api.KindValidation) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, id := range []string{"", "RUN-X", "run-../x", strings.Repeat("a", 65)} {
		if _, err := e.runner.Get(ctx, id); !isKind(err, api.KindInvalidID) {
			t.Errorf("Get(%q): %v", id, err)
		}
	}
	if _, err := e.runner.Get(ctx, "run-nope"); !isKind(err, api.KindNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	if _, err := e.runner.Approve(ctx, "run-nope", bob, ""); !isKind(err, api.KindNotFound) {
		t.Errorf("Approve unknown: %v", err)
	}
}

// The kill -9 test re-executes this test binary as a child that opens the
// node in a directory, submits a run whose test stage takes a while, and
// prints its id; the parent kills it at some point of the run, reopens the
// node and lets the run finish.
const (
	childEnv   = "PIPELINE_CHILD_DIR"
	childSleep = "PIPELINE_CHILD_TEST_SLEEP"
	childVer   = "PIPELINE_CHILD_VERSION"
	childAt    = "PIPELINE_CHILD_KILL_AT"
)

// slowLedger and slowSigner are the real ledger and signer, slowed down
// in the child so a kill lands inside the record and sign stages.
type slowLedger struct {
	Ledger
	d time.Duration
}

func (s slowLedger) Append(ctx context.Context, e ledger.Entry) (ledger.Receipt, error) {
	r, err := s.Ledger.Append(ctx, e)
	time.Sleep(s.d) // appended, receipt not yet recorded in the run
	return r, err
}

type slowSigner struct {
	Signer
	d time.Duration
}

func (s slowSigner) Sign(ctx context.Context, p provenance.Params) ([]byte, string, error) {
	time.Sleep(s.d)
	return s.Signer.Sign(ctx, p)
}

// slowTester passes every version after sleeping (a stand-in for a test
// stage that takes time; the JS tester has its own tests).
type slowTester struct{ sleep time.Duration }

func (s slowTester) Test(ctx context.Context, in TestInput) (api.PipelineTestReport, error) {
	select {
	case <-time.After(s.sleep):
	case <-ctx.Done():
		return api.PipelineTestReport{}, ctx.Err()
	}
	return api.PipelineTestReport{Passed: true, Files: []api.PipelineTestFile{{File: "tests/a.test.js",
		Tests: []api.PipelineTestCase{{Name: "works", Result: api.TestPassed}}}}}, nil
}

func runChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sleep, _ := time.ParseDuration(os.Getenv(childSleep))
	cache, err := os.MkdirTemp("", "pipeline-child-cache")
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	defer os.RemoveAll(cache)
	if testRuntime, err = isolate.NewRuntime(ctx, isolate.Config{CacheDir: cache}); err != nil {
		fmt.Println("fail", err)
		return 2
	}
	if os.Getenv(childConfig) != "" {
		return runConfigChild(ctx)
	}
	if os.Getenv(childToolPins) != "" {
		return runToolPinsChild(ctx)
	}
	t := &childTB{}
	e, err := openEnvErr(ctx, t, os.Getenv(childEnv), func(_ *env, c *Config) {
		c.Tester = slowTester{sleep}
		c.Ledger = slowLedger{c.Ledger, 150 * time.Millisecond}
		c.Signer = slowSigner{c.Signer, 300 * time.Millisecond}
	})
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	if err := e.runner.Start(ctx); err != nil {
		fmt.Println("fail", err)
		return 2
	}
	run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "crash", os.Getenv(childVer), nil, nil), Principal: alice})
	if err != nil {
		fmt.Println("fail", err)
		return 2
	}
	fmt.Println("run", run.ID)
	// Say when the run is at the stage the parent kills it in.
	at := os.Getenv(childAt)
	for ctx.Err() == nil {
		cur, err := e.runner.Get(ctx, run.ID)
		if err == nil && cur.Stage == at && cur.State == api.RunRunning {
			fmt.Println("at", at)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	<-ctx.Done() // until killed (or a minute: a child always stops by itself)
	return 0
}

// childTB is the testing.TB the child's helpers fail through.
type childTB struct{ testing.TB }

func (c *childTB) Helper()                           {}
func (c *childTB) Fatal(args ...any)                 { fmt.Println("fail", fmt.Sprint(args...)); os.Exit(2) }
func (c *childTB) Fatalf(format string, args ...any) { c.Fatal(fmt.Sprintf(format, args...)) }

// TestRunResumesAfterKill: kill -9 of the node inside each of the run's
// stages that does work (the record stage between a ledger append and
// storing its receipt, as the child's ledger is slowed there);
// after a restart every run completes, the version serves, and no ledger
// entry of a run was appended twice.
func TestRunResumesAfterKill(t *testing.T) {
	t.Parallel() // mostly waits for children it kills; its own directory
	if testing.Short() {
		t.Skip("kill -9 test")
	}
	dir := t.TempDir()
	stages := []string{api.StageValidate, api.StageBuild, api.StageTest, api.StageSign, api.StageRecord, api.StageRollout}
	for i, at := range stages {
		d := time.Duration(i*37%60) * time.Millisecond // somewhere inside the stage
		version := fmt.Sprintf("k%d", i)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, childSleep+"=700ms", childVer+"="+version, childAt+"="+at)
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
		reached := false
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "fail") {
				t.Fatal(line)
			}
			if rest, ok := strings.CutPrefix(line, "run "); ok {
				id = rest
			}
			if strings.HasPrefix(line, "at ") {
				reached = true
				break
			}
		}
		if !reached {
			t.Logf("the run passed %s before the child saw it; killing it later", at)
		}
		time.Sleep(d)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if id == "" {
			t.Fatal("child printed no run")
		}

		e := openEnv(t, dir, func(_ *env, c *Config) { c.Tester = slowTester{0} })
		e.start(t)
		run := e.wait(t, id)
		if run.State != api.RunPassed {
			t.Fatalf("kill in %s: run %s (%s) %v", at, run.State, run.Error, stageStates(run))
		}
		if got := e.serving(t, "crash"); got != "hello "+version {
			t.Fatalf("kill in %s: serving %q", at, got)
		}
		// Each of the run's entries is in the ledger once.
		seen := map[string]int{}
		size := e.ledger.Size()
		for idx := uint64(0); idx < size; idx++ {
			rec, err := e.ledger.Entry(context.Background(), idx)
			if err != nil {
				t.Fatal(err)
			}
			en := rec.Entry
			switch {
			case en.Change != nil && "sha256:"+en.Change.Version == run.Bundle:
				seen["change"]++
			case en.Provenance != nil && string(en.Provenance.SubjectDigest) == run.Bundle:
				seen["provenance"]++
			case en.Test != nil && en.Test.Suite == "pipeline:"+id:
				seen["test"]++
			}
		}
		if seen["change"] != 1 || seen["provenance"] != 1 || seen["test"] != 1 {
			t.Fatalf("kill in %s: ledger entries of the run %v", at, seen)
		}
		t.Logf("kill in %s (+%v): attempts %v", at, d, attempts(run))
		e.close()
	}
}

func attempts(run api.PipelineRun) map[string]int {
	m := map[string]int{}
	for _, s := range run.Stages {
		if s.Attempts > 1 {
			m[s.Name] = s.Attempts
		}
	}
	return m
}
