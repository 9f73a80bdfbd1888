package rollout

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

var testRuntime *isolate.Runtime

func TestMain(m *testing.M) {
	os.Exit(isolatetest.WithRuntime(func(rt *isolate.Runtime) int {
		testRuntime = rt
		if d := os.Getenv(envCrashDir); d != "" {
			return crashChild(d)
		}
		return m.Run()
	}))
}

const testOrigin = "test.agentcloud.local/rollout"

// testSKey is one ledger key for the test binary; a crash child gets its
// parent's through the environment.
var testSKey = func() string {
	if k := os.Getenv(envCrashKey); k != "" {
		return k
	}
	s, _, err := ledger.GenerateKey(testOrigin)
	if err != nil {
		panic(err)
	}
	return s
}()

// fakeClock is the clock step pauses run on; tests move it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// env is a real store, session manager, ledger and controller.
type env struct {
	st    *store.Store
	m     *session.Manager
	l     *ledger.Ledger
	c     *Controller
	clock *fakeClock
	once  sync.Once
}

var defaultThresholds = Thresholds{MinCalls: 5, MaxErrorRateIncrease: 0.05, MaxP99Ratio: 1.5, P99Slack: 100 * time.Millisecond}

// open opens (or reopens) everything in dir.
func open(t testing.TB, dir string, noSync bool, th Thresholds, kept int) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: noSync})
	if err != nil {
		t.Fatal(err)
	}
	e, err := openOn(ctx, st, th, kept)
	if err != nil {
		_ = st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.close() })
	return e
}

func openOn(ctx context.Context, st *store.Store, th Thresholds, kept int) (*env, error) {
	m, err := session.New(ctx, session.Config{Store: st, Runtime: testRuntime, JanitorInterval: time.Hour})
	if err != nil {
		return nil, err
	}
	key, err := ledger.ParseKey(testSKey)
	if err != nil {
		return nil, err
	}
	l, err := ledger.Open(ctx, st, key, ledger.Options{})
	if err != nil {
		return nil, err
	}
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c, err := New(ctx, Config{Store: st, Router: m, Ledger: l, Now: clock.Now, Thresholds: th, VersionsKept: kept})
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx, session.Bindings{Observer: c.Meter()}); err != nil {
		return nil, err
	}
	return &env{st: st, m: m, l: l, c: c, clock: clock}, nil
}

// close closes everything once (tests that restart close early).
func (e *env) close() {
	e.once.Do(func() {
		_ = e.m.Close(context.Background())
		_ = e.l.Close()
		_ = e.st.Close()
	})
}

const manifest = `{"name":"shop","entry":"agent.js","limits":{"idle_seconds":3600}}`

// agentJS answers with name; mode makes it throw, answer 500 or be slow.
func agentJS(name, mode string) string {
	body := `return new Response("` + name + `");`
	switch mode {
	case "throw":
		body = `throw new Error("regression in ` + name + `");`
	case "500":
		body = `return new Response("broken", {status: 500});`
	case "slow":
		body = `const end = Date.now() + 400; while (Date.now() < end) {} return new Response("` + name + `");`
	}
	return `export default { async fetch(request) { ` + body + ` } };`
}

func bundleOf(t testing.TB, man, code string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(man), "agent.js": []byte(code)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) deploy(t testing.TB, name string) string {
	t.Helper()
	v, err := e.m.Deploy(context.Background(), session.Principal{}, bundleOf(t, manifest, agentJS(name, "")))
	if err != nil {
		t.Fatal(err)
	}
	return v.Digest
}

func (e *env) add(t testing.TB, name, mode string) string {
	t.Helper()
	v, err := e.m.AddVersion(context.Background(), bundleOf(t, manifest, agentJS(name, mode)))
	if err != nil {
		t.Fatal(err)
	}
	return v.Digest
}

// sessionsIn returns n session ids of agent whose bucket is below percent
// (canary) or not (stable).
func sessionsIn(agent string, n, percent int, canary bool, prefix string) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		if (session.Bucket(agent, id) < percent) == canary {
			out = append(out, id)
		}
	}
	return out
}

// hit calls each session once and returns the bodies (or error texts).
func (e *env) hit(t testing.TB, ids []string) []string {
	t.Helper()
	out := make([]string, len(ids))
	for i, id := range ids {
		resp, err := e.m.Call(context.Background(), "shop", id, isolate.Request{Method: "GET", URL: "http://agents.local/"})
		if err != nil {
			out[i] = err.Error()
			continue
		}
		out[i] = string(resp.Body)
	}
	return out
}

// chain walks the ledger from ref through first parents, newest first.
func (e *env) chain(t testing.TB, ref *ledger.Ref) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	for ref != nil {
		r, err := e.l.Entry(context.Background(), ref.Index)
		if err != nil {
			t.Fatal(err)
		}
		if r.Hash != ref.Hash {
			t.Fatalf("entry %d hash %s, parent names %s", ref.Index, r.Hash, ref.Hash)
		}
		out = append(out, r.Entry)
		ref = nil
		if len(r.Entry.Parents) > 0 {
			ref = &r.Entry.Parents[0]
		}
	}
	return out
}
