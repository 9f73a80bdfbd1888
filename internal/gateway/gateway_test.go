package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/gateway/clock"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewaytest"
	"github.com/agentcloud/agentcloud/internal/identity"
)

var t0 = time.Unix(1_800_000_000, 0)

type env struct {
	ids   *gatewaytest.Identities
	clk   *clock.Fake
	gw    *gateway.Gateway
	reg   *prometheus.Registry
	h     http.Handler
	seen  chan gateway.Class
	block chan struct{} // when non-nil, the handler waits on it
}

func newEnv(t testing.TB, mod func(c *config.Gateway)) *env {
	t.Helper()
	ids, err := gatewaytest.NewIdentities(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ids: ids, clk: clock.NewFake(t0), reg: prometheus.NewRegistry(), seen: make(chan gateway.Class, 4096)}
	cfg := config.DefaultGateway()
	cfg.Concurrency.Adaptive = false
	if mod != nil {
		mod(&cfg)
	}
	e.gw, err = gateway.New(cfg, gateway.Deps{Identifier: ids, Registerer: e.reg, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	e.h = e.gw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := gateway.ClassFrom(r.Context())
		select {
		case e.seen <- c:
		default:
		}
		if e.block != nil {
			<-e.block
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Body-Len", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}))
	return e
}

// req builds a request from a principal ("" kind: anonymous).
func (e *env) req(t testing.TB, method, path string, kind identity.Kind, name string, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.RemoteAddr = "192.0.2.10:40000"
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if kind != "" {
		if err := e.ids.Authorize(r, kind, name); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (e *env) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) class(t testing.TB) gateway.Class {
	t.Helper()
	select {
	case c := <-e.seen:
		return c
	default:
		t.Fatal("the handler did not run")
		return gateway.Class{}
	}
}

// TestClassifyClass: each kind of caller, SPIFFE ID patterns, paths,
// methods, MCP methods and tool names choose the level their schema says.
func TestClassifyClass(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) {
		c.FlowSchemas = append(config.DefaultFlowSchemas(),
			config.FlowSchema{Name: "batch-agents", Level: "agent-batch", Precedence: 250, Match: []config.FlowMatch{{Identities: []string{"spiffe://agentcloud.local/agent/batch-*/**"}}}},
			config.FlowSchema{Name: "heavy-tool", Level: "agent-batch", Precedence: 50, Match: []config.FlowMatch{{MCPMethods: []string{"tools/call"}, Tools: []string{"run_code"}}}},
			config.FlowSchema{Name: "deploys", Level: "system", Precedence: 60, Match: []config.FlowMatch{{Kinds: []string{"user"}, Methods: []string{"PUT"}, Paths: []string{"/v1/agents/*"}}}},
		)
	})
	call := func(tool string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
	}
	cases := []struct {
		name, method, path string
		kind               identity.Kind
		who, body          string
		level, schema      string
	}{
		{"admin", "GET", "/v1/status", identity.KindAdmin, "root", "", "system", "system"},
		{"node", "GET", "/v1/status", identity.KindNode, "n1", "", "system", "system"},
		{"user", "GET", "/v1/agents", identity.KindUser, "alice", "", "human-interactive", "humans"},
		{"agent", "GET", "/v1/agents", identity.KindAgent, "notes", "", "agent-interactive", "agents"},
		{"session", "POST", "/a/notes/s/s1/x", identity.KindSession, "notes/s1", "{}", "agent-interactive", "agents"},
		{"sandbox", "GET", "/v1/agents", identity.KindSandbox, "sb1", "", "agent-batch", "batch"},
		{"anonymous", "GET", "/v1/agents", "", "", "", "anonymous", "catch-all"},
		{"spiffe pattern", "GET", "/v1/agents", identity.KindSession, "batch-etl/s9", "", "agent-batch", "batch-agents"},
		{"spiffe pattern miss", "GET", "/v1/agents", identity.KindSession, "etl/s9", "", "agent-interactive", "agents"},
		{"tool name", "POST", "/mcp", identity.KindUser, "alice", call("run_code"), "agent-batch", "heavy-tool"},
		{"other tool", "POST", "/mcp", identity.KindUser, "alice", call("ping"), "human-interactive", "humans"},
		{"method and path", "PUT", "/v1/agents/notes", identity.KindUser, "alice", "{}", "system", "deploys"},
		{"method miss", "GET", "/v1/agents/notes", identity.KindUser, "alice", "", "human-interactive", "humans"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(e.req(t, tc.method, tc.path, tc.kind, tc.who, tc.body))
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			c := e.class(t)
			if c.Level != tc.level || c.Schema != tc.schema {
				t.Fatalf("level %q schema %q, want %q %q (identity %+v)", c.Level, c.Schema, tc.level, tc.schema, c.Identity)
			}
		})
	}
	// A bad bearer token is scheduled as anonymous (the router refuses it).
	r := e.req(t, "GET", "/v1/agents", "", "", "")
	r.Header.Set("Authorization", "Bearer not-a-token")
	e.do(r)
	if c := e.class(t); c.Identity.Kind != gateway.KindAnonymous || c.Level != "anonymous" {
		t.Fatalf("bad token: %+v", c)
	}
}

// TestMCPPeekKeepsBodyClass: the body the handler reads is the body sent,
// whether it was classified (small JSON-RPC), too large to peek,
// malformed, a batch, or not JSON.
func TestMCPPeekKeepsBodyClass(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) { c.MCP.PeekBytes = 256 })
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping","arguments":{"pad":"` + strings.Repeat("x", 1000) + `"}}}`
	cases := []struct {
		name, body, ctype, method, tool string
		chunked                         bool
	}{
		{"tools/call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"state_get"}}`, "application/json", "tools/call", "state_get", false},
		{"tools/list", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "application/json", "tools/list", "", false},
		{"too large", big, "application/json", "", "", false},
		{"too large chunked", big, "application/json", "", "", true},
		{"malformed", `{"method":`, "application/json", "", "", false},
		{"batch", `[{"method":"tools/call"}]`, "application/json", "", "", false},
		{"not json", `method=tools/call`, "application/x-www-form-urlencoded", "", "", false},
		{"control chars in tool", `{"method":"tools/call","params":{"name":"a\nb"}}`, "application/json", "tools/call", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.req(t, "POST", "/mcp", identity.KindUser, "alice", "")
			r.Body = io.NopCloser(strings.NewReader(tc.body))
			r.ContentLength = int64(len(tc.body))
			if tc.chunked {
				r.ContentLength = -1
			}
			r.Header.Set("Content-Type", tc.ctype)
			w := e.do(r)
			if w.Body.String() != tc.body {
				t.Fatalf("handler read %d bytes, sent %d", w.Body.Len(), len(tc.body))
			}
			c := e.class(t)
			if c.MCPMethod != tc.method || c.Tool != tc.tool {
				t.Fatalf("peeked %q %q, want %q %q", c.MCPMethod, c.Tool, tc.method, tc.tool)
			}
		})
	}
}

func problemOf(t testing.TB, w *httptest.ResponseRecorder) api.Problem {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != api.ProblemContentType {
		t.Fatalf("content type %q: %s", ct, w.Body)
	}
	var p api.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRateLimitClass: rapid calls from one identity are refused once its
// quota is used, on any route; 429 answers carry RateLimit, RateLimit-Policy,
// Retry-After and a problem naming the limit, level and when to retry;
// another identity, and another tool, are unaffected; the quota refills.
func TestRateLimitClass(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) {
		c.RateLimits = []config.RateLimit{
			{Name: "identity", Quota: 10, Window: config.Duration(2 * time.Second), Key: "identity", Match: []config.FlowMatch{{Kinds: []string{"session", "user"}}}},
			{Name: "tool", Quota: 3, Window: config.Duration(time.Second), Key: "identity+tool", Match: []config.FlowMatch{{MCPMethods: []string{"tools/call"}}}},
		}
	})
	// 300 rapid calls to one session used to be 300 x 200.
	codes := map[int]int{}
	routes := []string{"/a/notes/s/s1/x", "/v1/agents", "/a/notes/s/s1/y"}
	for i := 0; i < 300; i++ {
		w := e.do(e.req(t, "POST", routes[i%3], identity.KindSession, "notes/s1", "{}"))
		codes[w.Code]++
		if i == 0 {
			if w.Header().Get("RateLimit-Policy") != `"identity";q=10;w=2` || w.Header().Get("RateLimit") != `"identity";r=9;t=1` {
				t.Fatalf("first response headers: %q %q", w.Header().Get("RateLimit-Policy"), w.Header().Get("RateLimit"))
			}
		}
		if w.Code == 429 && codes[429] == 1 {
			p := problemOf(t, w)
			if p.Kind() != api.KindRateLimited || p.Limit != "identity" || p.PriorityLevel != "agent-interactive" || p.RetryAfterSeconds != 1 {
				t.Fatalf("problem %+v", p)
			}
			if w.Header().Get("Retry-After") != "1" || w.Header().Get("RateLimit") != `"identity";r=0;t=1` {
				t.Fatalf("429 headers %v", w.Header())
			}
			if !strings.Contains(p.Detail, "retry in 1s") {
				t.Fatalf("detail %q", p.Detail)
			}
		}
	}
	if codes[200] != 10 || codes[429] != 290 {
		t.Fatalf("codes %v, want 10 x 200 and 290 x 429", codes)
	}
	// Another identity has its own quota.
	if w := e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, "bob", "")); w.Code != 200 {
		t.Fatalf("other identity: %d", w.Code)
	}
	// Per tool: the fourth call of one tool is refused, another tool is not.
	call := func(tool string) int {
		return e.do(e.req(t, "POST", "/mcp", identity.KindUser, "carol", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`"}}`)).Code
	}
	for i := 0; i < 3; i++ {
		if c := call("run_code"); c != 200 {
			t.Fatalf("tool call %d: %d", i, c)
		}
	}
	if c := call("run_code"); c != 429 {
		t.Fatalf("fourth run_code: %d", c)
	}
	if c := call("ping"); c != 200 {
		t.Fatalf("other tool: %d", c)
	}
	// A refusal by the tool limit did not spend the identity quota: carol
	// has made 5 calls of her 10 (the refused one was given back).
	w := e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, "carol", ""))
	if got := w.Header().Get("RateLimit"); got != `"identity";r=5;t=1` {
		t.Fatalf("carol after a tool refusal: %q", got)
	}
	// The quota refills with time.
	e.clk.Advance(2 * time.Second)
	if w := e.do(e.req(t, "POST", "/a/notes/s/s1/x", identity.KindSession, "notes/s1", "{}")); w.Code != 200 {
		t.Fatalf("after the window: %d", w.Code)
	}
}

// TestSchedulerRefusalClass: a full queue and a queue timeout are refused
// with 429/503, Retry-After and a problem naming the limit and the level.
func TestSchedulerRefusalClass(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) {
		c.Concurrency.Limit = 5
		c.RateLimits = []config.RateLimit{}
		c.Levels = config.DefaultLevels()
		for i := range c.Levels {
			c.Levels[i].Queues, c.Levels[i].HandSize, c.Levels[i].QueueLength = 1, 1, 2
			c.Levels[i].LendablePercent = 0
		}
	})
	e.block = make(chan struct{})
	var wg sync.WaitGroup
	results := make(chan *httptest.ResponseRecorder, 10)
	send := func(name string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, name, ""))
		}()
	}
	send("alice") // takes human-interactive's only seat
	waitLevel(t, e.gw, "human-interactive", 1, 0)
	send("alice")
	send("alice") // both queued
	waitLevel(t, e.gw, "human-interactive", 1, 2)
	// The queue is full of alice's own requests: her next is 429.
	w := e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, "alice", ""))
	p := problemOf(t, w)
	if w.Code != 429 || p.Kind() != api.KindRateLimited || p.Limit != "queue" || p.PriorityLevel != "human-interactive" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("own backlog: %d %+v", w.Code, p)
	}
	// Bob shares the (single) queue: for him the level is overloaded, 503.
	w = e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, "bob", ""))
	p = problemOf(t, w)
	if w.Code != 503 || p.Kind() != api.KindOverloaded || p.Limit != "queue" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("overloaded: %d %+v", w.Code, p)
	}
	// The queued requests time out after the level's 5s.
	e.clk.Advance(5 * time.Second)
	for i := 0; i < 2; i++ {
		w := <-results
		p := problemOf(t, w)
		if w.Code != 503 || p.Kind() != api.KindQueueTimeout || p.PriorityLevel != "human-interactive" || w.Header().Get("Retry-After") == "" || !strings.Contains(p.Detail, "5s") {
			t.Fatalf("timeout: %d %+v %v", w.Code, p, w.Header())
		}
	}
	close(e.block)
	wg.Wait()
	if w := <-results; w.Code != 200 {
		t.Fatalf("the running request: %d", w.Code)
	}
	// Metrics counted all of it.
	body := gather(t, e.reg)
	for _, want := range []string{
		`agentcloud_gateway_rejected_total{level="human-interactive",reason="queue-full"} 2`,
		`agentcloud_gateway_rejected_total{level="human-interactive",reason="queue-timeout"} 2`,
		`agentcloud_gateway_dispatched_total{level="human-interactive"} 1`,
		`agentcloud_gateway_queued{level="human-interactive"} 0`,
		`agentcloud_gateway_concurrency_limit 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func waitLevel(t testing.TB, gw *gateway.Gateway, level string, executing, queued int) {
	t.Helper()
	for i := 0; i < 200000; i++ {
		for _, l := range gw.Levels() {
			if l.Name == level && l.Executing == executing && l.Queued == queued {
				return
			}
		}
		time.Sleep(50 * time.Microsecond) // yield to the request goroutines; not a timing assertion
	}
	t.Fatalf("level %s never reached %d executing, %d queued: %+v", level, executing, queued, gw.Levels())
}

func gather(t testing.TB, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := 0.0
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			}
			lbl := ""
			if len(labels) > 0 {
				lbl = "{" + strings.Join(labels, ",") + "}"
			}
			fmt.Fprintf(&b, "%s%s %g\n", mf.GetName(), lbl, v)
		}
	}
	return b.String()
}

// TestNoisyIdentityCannotStarveClass: ten identities at one level through
// the whole gateway, one with ten times the concurrency of each other; each
// gets its share of completions (Jain's index >= 0.95).
func TestNoisyIdentityCannotStarveClass(t *testing.T) {
	ids, err := gatewaytest.NewIdentities(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultGateway()
	cfg.Concurrency = config.GatewayConcurrency{Limit: 5}
	cfg.RateLimits = []config.RateLimit{}
	gw, err := gateway.New(cfg, gateway.Deps{Identifier: ids})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	done := map[string]int{}
	var total atomic.Int64
	h := gw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := gateway.ClassFrom(r.Context())
		time.Sleep(time.Millisecond) // fixed service time
		mu.Lock()
		done[c.Identity.ID]++
		mu.Unlock()
		total.Add(1)
	}))
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		clients := 2
		if i == 0 {
			clients = 20
		}
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for total.Load() < 3000 {
					r := httptest.NewRequest("GET", "/v1/x", nil)
					if err := ids.Authorize(r, identity.KindSandbox, fmt.Sprintf("sb%d", i)); err != nil {
						t.Error(err)
						return
					}
					h.ServeHTTP(httptest.NewRecorder(), r)
				}
			}(i)
		}
	}
	wg.Wait()
	var xs []float64
	for i := 0; i < 10; i++ {
		xs = append(xs, float64(done[ids.SPIFFEID(identity.KindSandbox, fmt.Sprintf("sb%d", i))]))
	}
	j := gatewaytest.Jain(xs)
	t.Logf("completions per identity %v (noisy first), Jain %.3f", xs, j)
	if j < 0.95 {
		t.Fatalf("Jain's index %.3f < 0.95: %v", j, xs)
	}
}

// TestTwoPrincipalsRace: two principals hammer the gateway at once with
// requests that are served, rate limited, queued and canceled; the race
// detector watches, and nothing is left holding a seat.
func TestTwoPrincipalsRace(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) {
		c.Concurrency.Limit = 5
		c.RateLimits = []config.RateLimit{{Name: "identity", Quota: 50, Window: config.Duration(time.Second), Key: "identity"}}
	})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r := e.req(t, "POST", "/mcp", identity.KindUser, []string{"alice", "mallory"}[g%2], `{"method":"tools/call","params":{"name":"t"}}`)
				ctx, cancel := context.WithCancel(r.Context())
				if i%7 == 0 {
					cancel()
				}
				e.do(r.WithContext(ctx))
				cancel()
				if i%10 == 0 {
					e.clk.Advance(100 * time.Millisecond)
				}
			}
		}(g)
	}
	wg.Wait()
	for _, l := range e.gw.Levels() {
		if l.Executing != 0 || l.Queued != 0 {
			t.Fatalf("leak: %+v", l)
		}
	}
	if top := e.gw.Top(5); len(top) != 2 {
		t.Fatalf("top flows %+v", top)
	}
	tr := e.gw.Traffic(1)
	if tr.ConcurrencyLimit != 5 || len(tr.Levels) != 5 || len(tr.Top) != 1 {
		t.Fatalf("traffic %+v", tr)
	}
}

// TestLongRunningHoldsNoSeat: a streaming request matching long_running
// runs without a seat, so a level's seats cannot all be held by streams.
func TestLongRunningHoldsNoSeat(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) { c.Concurrency.Limit = 5; c.RateLimits = []config.RateLimit{} })
	e.block = make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.do(e.req(t, "POST", "/v1/sandboxes/sb1/exec", identity.KindUser, "alice", "{}"))
		}()
	}
	for i := 0; i < 10; i++ {
		if c := <-e.seen; !c.LongRunning {
			t.Fatalf("not long-running: %+v", c)
		}
	}
	if l := e.gw.Levels()[1]; l.Executing != 0 {
		t.Fatalf("streams hold seats: %+v", l)
	}
	close(e.block)
	wg.Wait()
}

// TestHostileInputClass: oversized and malformed signature fields, junk
// MCP bodies and odd addresses never crash the gateway or answer 5xx.
func TestHostileInputClass(t *testing.T) {
	e := newEnv(t, nil)
	cases := []func(r *http.Request){
		func(r *http.Request) { r.Header.Set("Signature-Input", strings.Repeat("a", 100<<10)) },
		func(r *http.Request) { r.Header.Set("Signature-Input", `sig=("@authority");tag="web-bot-auth"`) },
		func(r *http.Request) { r.Header.Set("Signature-Agent", "\x00") },
		func(r *http.Request) { r.RemoteAddr = "not an address" },
		func(r *http.Request) { r.RemoteAddr = "[2001:db8::1]:1" },
		func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+strings.Repeat("x", 64<<10)) },
	}
	for i, mod := range cases {
		r := e.req(t, "POST", "/mcp", "", "", string(bytes.Repeat([]byte{0xff}, 10)))
		mod(r)
		w := e.do(r)
		if w.Code >= 500 {
			t.Errorf("case %d: %d %s", i, w.Code, w.Body)
		}
		select {
		case <-e.seen:
		default:
		}
	}
	if id := gateway.Anonymous("[2001:db8:1:2:3:4:5:6]:443"); id.ID != "ip:2001:db8:1:2::/64" {
		t.Fatalf("IPv6 flow %q", id.ID)
	}
	if id := gateway.Anonymous("[::ffff:192.0.2.1]:1"); id.ID != "ip:192.0.2.1" {
		t.Fatalf("mapped IPv4 flow %q", id.ID)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	cfg := config.DefaultGateway()
	cfg.Levels = []config.PriorityLevel{{Name: "x", Shares: 0}}
	if _, err := gateway.New(cfg, gateway.Deps{}); err == nil || !strings.Contains(err.Error(), "gateway.levels[0].shares") {
		t.Fatalf("got %v", err)
	}
}

// TestWouldTimeOutRefusalClass: once the level has learnt its service
// time, a request that would wait longer than the queue timeout is refused
// at once, not after the timeout: 429 when its own identity's backlog is
// what it waits behind, 503 when it is everyone's, each with Retry-After
// and a problem naming the limit, the level and the timeout.
func TestWouldTimeOutRefusalClass(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) {
		c.Concurrency.Limit = 5
		c.RateLimits = []config.RateLimit{}
		c.Levels = config.DefaultLevels()
		for i := range c.Levels {
			c.Levels[i].Queues, c.Levels[i].HandSize, c.Levels[i].QueueLength = 4, 1, 100
			c.Levels[i].LendablePercent = 0
			c.Levels[i].QueueTimeout = config.Duration(5 * time.Second)
		}
	})
	results := make(chan *httptest.ResponseRecorder, 10)
	send := func(name string) {
		go func() { results <- e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, name, "")) }()
	}
	// Each request holds human-interactive's only seat for 4s.
	for range 40 {
		e.block = make(chan struct{})
		send("warm")
		waitLevel(t, e.gw, "human-interactive", 1, 0)
		e.clk.Advance(4 * time.Second)
		close(e.block)
		if w := <-results; w.Code != 200 {
			t.Fatalf("warm-up: %d", w.Code)
		}
	}
	e.block = make(chan struct{})
	send("alice")
	waitLevel(t, e.gw, "human-interactive", 1, 0)
	send("alice") // waits about 4s: queued
	waitLevel(t, e.gw, "human-interactive", 1, 1)
	for _, tc := range []struct {
		who  string
		code int
		kind api.Kind
	}{{"alice", 429, api.KindRateLimited}, {"bob", 503, api.KindOverloaded}} {
		w := e.do(e.req(t, "GET", "/v1/agents", identity.KindUser, tc.who, ""))
		p := problemOf(t, w)
		if w.Code != tc.code || p.Kind() != tc.kind || p.Limit != "queue" || p.PriorityLevel != "human-interactive" ||
			w.Header().Get("Retry-After") == "" || !strings.Contains(p.Detail, "queue timeout of 5s") {
			t.Fatalf("%s: %d %+v %v", tc.who, w.Code, p, w.Header())
		}
	}
	close(e.block)
	for range 2 {
		if w := <-results; w.Code != 200 {
			t.Fatalf("the running and the queued request: %d", w.Code)
		}
	}
	if body := gather(t, e.reg); !strings.Contains(body, `agentcloud_gateway_rejected_total{level="human-interactive",reason="would-time-out"} 2`) {
		t.Fatalf("metrics:\n%s", body)
	}
}
