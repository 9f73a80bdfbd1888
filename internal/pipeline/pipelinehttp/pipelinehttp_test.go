package pipelinehttp

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/pipeline/provenance"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

var testRuntime *isolate.Runtime

func TestMain(m *testing.M) {
	os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int { testRuntime = rt; return m.Run() }))
}

// tokens: alice and bob are people, "bot" is a session of agent builder.
type tokens struct{}

func (tokens) Authenticate(r *http.Request) (httpapi.Principal, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer alice":
		return httpapi.Principal{ID: "spiffe://t/user/alice", Kind: "user"}, nil
	case "Bearer bob":
		return httpapi.Principal{ID: "spiffe://t/user/bob", Kind: "user"}, nil
	case "Bearer bot":
		return httpapi.Principal{ID: "spiffe://t/agent/builder/session/s1", Kind: "session"}, nil
	}
	return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "no token")
}

// allowAll lets every authenticated principal act, as a permissive policy
// would: the pipeline's own review rules still apply.
type allowAll struct{}

func (allowAll) Authorize(context.Context, httpapi.Principal, string, httpapi.Resource) error {
	return nil
}

type fixture struct {
	srv    *httptest.Server
	runner *pipeline.Runner
}

func setup(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := session.New(ctx, session.Config{Store: st, Runtime: testRuntime})
	if err != nil {
		t.Fatal(err)
	}
	if err := sm.Start(ctx, session.Bindings{}); err != nil {
		t.Fatal(err)
	}
	skey, _, err := ledger.GenerateKey("t/ledger")
	if err != nil {
		t.Fatal(err)
	}
	lk, _ := ledger.ParseKey(skey)
	l, err := ledger.Open(ctx, st, lk, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	akv, err := st.KV(ctx, "approvals", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := pipeline.NewCedarGate(nil, func(ctx context.Context, agent string) (string, error) {
		info, _, err := sm.AgentInfo(ctx, agent)
		return info.Owner, err
	})
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := provenance.GenerateKey()
	r, err := pipeline.New(ctx, pipeline.Config{Store: st, Versions: sm, Gate: gate, Reviews: approval.New(akv, nil),
		Signer: pipeline.KeySigner{Key: pk}, Ledger: l, Rollout: pipeline.SwitchRollout{Switcher: sm}, Builder: "spiffe://t/node/n1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: tokens{}, Authz: allowAll{}, MaxBodyBytes: 1 << 20})
	New(r, nil, nil).Routes(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(func() {
		srv.Close()
		r.Close()
		_ = sm.Close(ctx)
		_ = l.Close()
		_ = st.Close()
	})
	return fixture{srv: srv, runner: r}
}

func (f fixture) do(t *testing.T, method, path, token, body string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func bundleOf(t *testing.T, version string, egress string) *bundle.Bundle {
	man := `{"name":"builder","entry":"agent.js"` + egress + `}`
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(man),
		"agent.js": []byte(`export default { fetch() { return new Response("` + version + `"); } };`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPipelineRoutes: an agent's change adding a host waits for review;
// the routes show it, stream its progress, give its diff, refuse the
// author's approval and take a person's; the released run's provenance
// verifies.
func TestPipelineRoutes(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	first, err := f.runner.Submit(ctx, pipeline.Submission{Bundle: bundleOf(t, "v1", ""), Principal: api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "spiffe://t/user/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if run, _ := f.runner.Wait(wctx, first.ID); run.State != api.RunPassed {
		t.Fatalf("first: %s %s", run.State, run.Error)
	}
	run, err := f.runner.Submit(ctx, pipeline.Submission{Bundle: bundleOf(t, "v2", `,"egress":["api.example.com"]`),
		Principal: api.PipelinePrincipal{Kind: api.AuthorSession, ID: "spiffe://t/agent/builder/session/s1"}})
	if err != nil {
		t.Fatal(err)
	}
	// The stream runs until the run waits for review.
	code, body, hdr := f.do(t, "GET", "/v1/pipeline/runs/"+run.ID+"/events", "alice", "")
	if code != 200 || hdr.Get("Content-Type") != api.PipelineEventContentType {
		t.Fatalf("events %d %s", code, body)
	}
	var stages []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		var ev api.PipelineEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		if ev.Type == api.EventStage {
			stages = append(stages, ev.Stage+":"+ev.State)
		}
	}
	if got := strings.Join(stages, " "); !strings.Contains(got, "policy:passed") || !strings.HasSuffix(got, "review:waiting") {
		t.Fatalf("stream stages: %s", got)
	}
	code, body, _ = f.do(t, "GET", "/v1/pipeline/runs/"+run.ID, "alice", "")
	var got api.PipelineRun
	if code != 200 || json.Unmarshal(body, &got) != nil || got.State != api.RunWaiting || len(got.Change.NewHosts) != 1 {
		t.Fatalf("show %d %s", code, body)
	}
	code, body, _ = f.do(t, "GET", "/v1/pipeline/runs/"+run.ID+"/diff", "alice", "")
	var d api.PipelineDiff
	if code != 200 || json.Unmarshal(body, &d) != nil || len(d.Files) != 2 || !strings.Contains(d.Files[0].Diff+d.Files[1].Diff, "+") {
		t.Fatalf("diff %d %s", code, body)
	}
	code, body, _ = f.do(t, "GET", "/v1/pipeline/runs?agent=builder&limit=10", "alice", "")
	var list api.PipelineRunList
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Runs) != 2 || list.Runs[0].ID != run.ID {
		t.Fatalf("list %d %s", code, body)
	}
	if code, body, _ = f.do(t, "POST", "/v1/pipeline/runs/"+run.ID+"/approve", "bot", `{"comment":"me"}`); code != 403 {
		t.Fatalf("author approving: %d %s", code, body)
	}
	if code, body, _ = f.do(t, "POST", "/v1/pipeline/runs/"+run.ID+"/approve", "bob", `{"comment":"ok"}`); code != 200 {
		t.Fatalf("approve: %d %s", code, body)
	}
	if done, _ := f.runner.Wait(wctx, run.ID); done.State != api.RunPassed {
		t.Fatalf("after approval: %s %s", done.State, done.Error)
	}
	code, body, _ = f.do(t, "GET", "/v1/pipeline/runs/"+run.ID+"/provenance", "alice", "")
	var p api.PipelineProvenance
	if code != 200 || json.Unmarshal(body, &p) != nil {
		t.Fatalf("provenance %d %s", code, body)
	}
	if v, err := provenance.Verify(ctx, p.Envelope, []byte(p.PublicKey)); err != nil || v.Subject != run.Bundle {
		t.Fatalf("verify: %v", err)
	}
	code, body, _ = f.do(t, "GET", "/v1/pipeline/runs/"+run.ID+"/logs?limit=5", "alice", "")
	var logs api.PipelineLogs
	if code != 200 || json.Unmarshal(body, &logs) != nil || len(logs.Events) != 5 || logs.Next == 0 {
		t.Fatalf("logs %d %s", code, body)
	}
}

// TestPipelineRoutesBadInputClass: malformed ids, unknown runs, bad query
// parameters and bodies are 4xx problems, never 5xx.
func TestPipelineRoutesBadInputClass(t *testing.T) {
	f := setup(t)
	cases := []struct {
		method, path, token, body string
		status                    int
		kind                      api.Kind
	}{
		{"GET", "/v1/pipeline/runs/RUN-UPPER", "alice", "", 400, api.KindInvalidID},
		{"GET", "/v1/pipeline/runs/" + strings.Repeat("a", 65), "alice", "", 400, api.KindInvalidID},
		{"GET", "/v1/pipeline/runs/run-a%2e%2e", "alice", "", 400, api.KindInvalidID},
		{"GET", "/v1/pipeline/runs/run-missing", "alice", "", 404, api.KindNotFound},
		{"GET", "/v1/pipeline/runs/run-missing/diff", "alice", "", 404, api.KindNotFound},
		{"GET", "/v1/pipeline/runs/run-missing/provenance", "alice", "", 404, api.KindNotFound},
		{"GET", "/v1/pipeline/runs/run-missing/report", "alice", "", 404, api.KindNotFound},
		{"GET", "/v1/pipeline/runs/run-missing/events", "alice", "", 404, api.KindNotFound},
		{"POST", "/v1/pipeline/runs/run-missing/cancel", "alice", "", 404, api.KindNotFound},
		{"POST", "/v1/pipeline/runs/run-missing/approve", "alice", `{"comment":`, 400, api.KindInvalidJSON},
		{"POST", "/v1/pipeline/runs/run-missing/approve", "alice", `{"surprise":1}`, 400, ""},
		{"POST", "/v1/pipeline/runs/run-missing/approve", "alice", `{"comment":"` + strings.Repeat("x", 5000) + `"}`, 422, api.KindValidation},
		{"GET", "/v1/pipeline/runs?limit=-1", "alice", "", 400, ""},
		{"GET", "/v1/pipeline/runs?limit=abc", "alice", "", 400, ""},
		{"GET", "/v1/pipeline/runs?agent=Bad_Agent", "alice", "", 400, api.KindInvalidID},
		{"GET", "/v1/pipeline/runs?bogus=1", "alice", "", 400, ""},
		{"GET", "/v1/pipeline/runs", "", "", 401, api.KindUnauthenticated},
	}
	for _, c := range cases {
		code, body, _ := f.do(t, c.method, c.path, c.token, c.body)
		if code != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.status)
			continue
		}
		var p api.Problem
		if err := json.Unmarshal(body, &p); err != nil || (c.kind != "" && p.Kind() != c.kind) {
			t.Errorf("%s %s: problem %s, want %s", c.method, c.path, body, c.kind)
		}
	}
}
