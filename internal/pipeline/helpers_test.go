package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/approval"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline/provenance"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

var testRuntime *isolate.Runtime

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int { testRuntime = rt; return m.Run() }))
}

// env is a node's real parts: store, session manager, ledger, approvals,
// Cedar gate, provenance key, and the runner over them.
type env struct {
	dir      string
	st       *store.Store
	sessions *session.Manager
	ledger   *ledger.Ledger
	reviews  *approval.Store
	gate     *CedarGate
	key      *provenance.Key
	runner   *Runner
	once     sync.Once
}

// envOptions adjusts a runner's config.
type envOption func(*env, *Config)

// keys are written once per dir, so a reopened env signs with the same keys.
func keys(t testing.TB, rt *isolate.Runtime, dir string) (*ledger.Key, *provenance.Key) {
	lpath, ppath := filepath.Join(dir, "ledger.key"), filepath.Join(dir, "prov.pem")
	if _, err := os.Stat(lpath); err != nil {
		skey, _, err := ledger.GenerateKey("test.agentcloud/ledger")
		if err != nil {
			t.Fatal(err)
		}
		pk, err := provenance.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(lpath, []byte(skey), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(ppath, pk.MarshalPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	skey, err := os.ReadFile(lpath)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := ledger.ParseKey(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ppath)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := provenance.ParseKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	return lk, pk
}

// openEnv opens (or reopens) the node in dir. The runner is not started.
func openEnv(t testing.TB, dir string, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	e, err := openEnvErr(ctx, t, dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.close)
	return e
}

func openEnvErr(ctx context.Context, t testing.TB, dir string, opts ...envOption) (*env, error) {
	lk, pk := keys(t, testRuntime, dir)
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "store")})
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, st: st, key: pk}
	if e.sessions, err = session.New(ctx, session.Config{Store: st, Runtime: testRuntime, JanitorInterval: 50 * time.Millisecond}); err != nil {
		return nil, err
	}
	if err := e.sessions.Start(ctx, session.Bindings{}); err != nil {
		return nil, err
	}
	if e.ledger, err = ledger.Open(ctx, st, lk, ledger.Options{}); err != nil {
		return nil, err
	}
	kv, err := st.KV(ctx, "approvals", store.KVOptions{})
	if err != nil {
		return nil, err
	}
	e.reviews = approval.New(kv, nil)
	e.gate, err = NewCedarGate(nil, func(ctx context.Context, agent string) (string, error) {
		info, _, err := e.sessions.AgentInfo(ctx, agent)
		return info.Owner, err
	})
	if err != nil {
		return nil, err
	}
	cfg := Config{Store: st, Versions: e.sessions, Gate: e.gate, Reviews: e.reviews, Signer: KeySigner{Key: pk},
		Ledger: e.ledger, Rollout: SwitchRollout{Switcher: e.sessions}, Builder: "spiffe://test.agentcloud/node/n1",
		BuilderVersion: "test"}
	for _, o := range opts {
		o(e, &cfg)
	}
	if e.runner, err = New(ctx, cfg); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() { e.once.Do(e.closeOnce) }

func (e *env) closeOnce() {
	if e.runner != nil {
		e.runner.Close()
	}
	if e.sessions != nil {
		_ = e.sessions.Close(context.Background())
	}
	if e.ledger != nil {
		_ = e.ledger.Close()
	}
	_ = e.st.Close()
}

// start starts the runner.
func (e *env) start(t testing.TB) {
	t.Helper()
	if err := e.runner.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

var (
	alice  = api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "spiffe://test.agentcloud/user/alice"}
	bob    = api.PipelinePrincipal{Kind: api.AuthorHuman, ID: "spiffe://test.agentcloud/user/bob"}
	botAgt = api.PipelinePrincipal{Kind: api.AuthorSession, ID: "spiffe://test.agentcloud/agent/builder/session/s1",
		Labels: map[string]string{"agent": "builder", "integrity": "trusted"}}
)

const helloJS = `export default { async fetch(req, env) {
  const url = new URL(req.url);
  if (url.pathname === "/count") {
    const n = ((await env.state.get("n")) || 0) + 1;
    await env.state.put("n", n);
    return Response.json({n});
  }
  return new Response("hello VERSION");
} };`

// helloBundle is a small agent answering "hello <version>", with files
// added (tests, for one).
func helloBundle(t testing.TB, name, version string, egress []string, extra map[string]string) *bundle.Bundle {
	t.Helper()
	man := `{"name":"` + name + `","entry":"agent.js"`
	if len(egress) > 0 {
		man += `,"egress":["` + egress[0] + `"]`
	}
	man += `}`
	files := map[string][]byte{"agent.json": []byte(man), "agent.js": []byte(strings.ReplaceAll(helloJS, "VERSION", version))}
	for p, s := range extra {
		files[p] = []byte(s)
	}
	b, err := bundle.FromFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serving returns what the agent's production session answers.
func (e *env) serving(t testing.TB, agent string) string {
	t.Helper()
	resp, err := e.sessions.Call(context.Background(), agent, "prod", isolate.Request{Method: "GET", URL: "http://agents.local/"})
	if err != nil {
		return "error: " + err.Error()
	}
	return string(resp.Body)
}

// wait waits for run id to end or wait for review.
func (e *env) wait(t testing.TB, id string) api.PipelineRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run, err := e.runner.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for %s: %v (run %+v)", id, err, run)
	}
	return run
}

func stageStates(run api.PipelineRun) map[string]string {
	m := map[string]string{}
	for _, s := range run.Stages {
		m[s.Name] = s.State
	}
	return m
}
