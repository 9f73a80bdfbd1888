package daemon_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// slowAgent answers after a fixed service time, so a handful of callers
// hold every seat of the front door.
const slowAgent = `export default {
  async fetch(request) {
    await new Promise(r => setTimeout(r, 100));
    return new Response("ok");
  }
}`

// floodConfig is a daemon with a small, fixed concurrency limit, users
// named batch-* sent to agent-batch (everyone else keeps the default
// classes: users are human-interactive), short agent-batch queues, and no
// rate limits (these tests measure scheduling).
func floodConfig() config.Config {
	cfg := config.Default()
	g := &cfg.Gateway
	g.Concurrency = config.GatewayConcurrency{Limit: 10}
	g.RateLimits = []config.RateLimit{}
	g.Levels = config.DefaultLevels()
	for i := range g.Levels {
		if g.Levels[i].Name == "agent-batch" {
			l := &g.Levels[i]
			l.Queues, l.HandSize, l.QueueLength, l.QueueTimeout = 8, 2, 2, config.Duration(3*time.Second)
		}
	}
	g.FlowSchemas = append(config.DefaultFlowSchemas(), config.FlowSchema{
		Name: "batch-users", Level: "agent-batch", Precedence: 150,
		Match: []config.FlowMatch{{Identities: []string{"spiffe://*/user/batch-*"}}},
	})
	return cfg
}

// slowDaemon starts a daemon on cfg with the slow agent deployed by
// "owner" and every user allowed to call its sessions.
func slowDaemon(t *testing.T, cfg config.Config) (*daemon.Daemon, *client.Client) {
	t.Helper()
	d, admin := startDaemonWith(t, cfg, nil)
	owner := userClient(t, d, admin, "user:owner")
	if err := deployJS(owner, `{"name":"slow","entry":"agent.js"}`, slowAgent); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApplyPolicies(context.Background(),
		`@id("users-call-slow") permit (principal is User, action == Action::"session.call", resource);`); err != nil {
		t.Fatal(err)
	}
	return d, admin
}

// refusal is one answer the front door refused, kept to check its headers.
type refusal struct {
	status int
	header http.Header
	body   []byte
}

// flood sends the slow agent requests from each client, conc at a time,
// until stop is closed; it counts answers by status and keeps the first
// refusal.
type flood struct {
	wg      sync.WaitGroup
	stop    chan struct{}
	ok      atomic.Int64
	refused atomic.Int64
	other   atomic.Int64
	mu      sync.Mutex
	odd     string // what the first "other" answer was
	first   *refusal
	byKind  map[string]*refusal // the first refusal of each problem type
}

func startFlood(clients []*client.Client, session func(i int) string, conc int) *flood {
	f := &flood{stop: make(chan struct{}), byKind: map[string]*refusal{}}
	for i, c := range clients {
		for j := 0; j < conc; j++ {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				for {
					select {
					case <-f.stop:
						return
					default:
					}
					f.call(c, session(i))
				}
			}()
		}
	}
	return f
}

func (f *flood) call(c *client.Client, session string) {
	// A hang bound, not a speed check: a loaded 2-core box can hold a
	// queued request for many seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, "slow", session, "GET", "/", nil, nil)
	if err != nil {
		f.noteOther(err.Error())
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		f.ok.Add(1)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		f.refused.Add(1)
		f.mu.Lock()
		r := &refusal{resp.StatusCode, resp.Header.Clone(), body}
		if f.first == nil {
			f.first = r
		}
		var p api.Problem
		if json.Unmarshal(body, &p) == nil && f.byKind[p.Type] == nil {
			f.byKind[p.Type] = r
		}
		f.mu.Unlock()
	default:
		f.noteOther(fmt.Sprintf("%d %s", resp.StatusCode, body))
	}
}

func (f *flood) noteOther(what string) {
	f.other.Add(1)
	f.mu.Lock()
	if f.odd == "" {
		f.odd = what
	}
	f.mu.Unlock()
}

func (f *flood) end() {
	close(f.stop)
	f.wg.Wait()
}

// level returns the named level of the front door's state.
func level(t *testing.T, admin *client.Client, name string) api.TrafficLevel {
	t.Helper()
	tr, err := admin.Traffic(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range tr.Levels {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no level %q in %+v", name, tr.Levels)
	return api.TrafficLevel{}
}

// waitSaturated waits until the flood has made level queue or refuse.
func waitSaturated(t *testing.T, admin *client.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if l := level(t, admin, name); l.Queued > 0 || l.Rejected > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the flood never saturated %s: %+v", name, level(t, admin, name))
}

// checkRefusal: a refused request says, in headers and a problem+json body,
// which limit refused it, in which priority level, and when to retry.
func checkRefusal(t *testing.T, r *refusal, wantLevel string) {
	t.Helper()
	if r == nil {
		t.Fatal("no request was refused")
	}
	if ct := r.header.Get("Content-Type"); ct != api.ProblemContentType {
		t.Errorf("refusal %d: Content-Type %q", r.status, ct)
	}
	ra := r.header.Get("Retry-After")
	var p api.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("refusal %d body %q: %v", r.status, r.body, err)
	}
	if ra == "" || ra == "0" || fmt.Sprint(p.RetryAfterSeconds) != ra {
		t.Errorf("refusal %d: Retry-After %q, body retry_after_seconds %d", r.status, ra, p.RetryAfterSeconds)
	}
	if p.Status != r.status || p.Limit == "" || p.PriorityLevel != wantLevel || !strings.HasPrefix(p.Type, api.TypeBase) ||
		!strings.Contains(p.Detail, wantLevel) || !strings.Contains(p.Detail, "retry in") {
		t.Errorf("refusal %d: problem %+v", r.status, p)
	}
}

// TestGatewayFloodSparesHumansClass: agents flood the daemon from twenty
// identities at many times what it can serve while a person calls the same
// agent one request at a time. Counted by the scheduler, not timed: every
// one of the person's requests is served and none waits in a queue; the
// flood queues and is refused with the rules in headers and problem+json.
func TestGatewayFloodSparesHumansClass(t *testing.T) {
	d, admin := slowDaemon(t, floodConfig())
	var batch []*client.Client
	for i := 0; i < 20; i++ {
		batch = append(batch, userClient(t, d, admin, fmt.Sprintf("user:batch-%02d", i)))
	}
	human := userClient(t, d, admin, "user:alice")
	f := startFlood(batch, func(i int) string { return fmt.Sprintf("b%d", i%5) }, 3)
	defer f.end()
	waitSaturated(t, admin, "agent-batch")
	for n := 0; n < 8; n++ {
		resp, err := human.Call(context.Background(), "slow", "human", "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("human request %d under the flood: %d %s", n, resp.StatusCode, body)
		}
	}
	// Probes and metrics stay reachable under the flood (system level).
	anon, _ := client.New("http://"+d.Addr(), "")
	var metrics string
	for n := 0; n < 5; n++ {
		if err := anon.Ready(context.Background()); err != nil {
			t.Fatalf("readyz under the flood: %v", err)
		}
		if err := anon.Do(context.Background(), "GET", "/healthz", nil, nil); err != nil {
			t.Fatalf("healthz under the flood: %v", err)
		}
		resp, err := admin.Raw(context.Background(), "GET", "/metrics", nil, "")
		if err != nil {
			t.Fatalf("metrics under the flood: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
	}
	hl, bl, sl := level(t, admin, "human-interactive"), level(t, admin, "agent-batch"), level(t, admin, "system")
	f.end()
	f.stop = make(chan struct{}) // end ran; the deferred one is a no-op
	if hl.Dispatched < 8 || hl.Waited != 0 || hl.Rejected != 0 || hl.TimedOut != 0 {
		t.Errorf("human-interactive under the flood: %+v; want 8 dispatched, none waited or refused", hl)
	}
	if sl.Dispatched < 15 || sl.Waited != 0 || sl.Rejected != 0 {
		t.Errorf("system level under the flood: %+v; want the probes dispatched at once", sl)
	}
	for _, want := range []string{`agentcloud_gateway_dispatched_total{level="agent-batch"}`, `agentcloud_gateway_rejected_total{level="agent-batch",reason=`,
		`agentcloud_gateway_wait_seconds_count{level="human-interactive"}`, `agentcloud_gateway_queued{level="agent-batch"}`,
		`agentcloud_gateway_concurrency_limit 10`, "agentcloud_gateway_connections_open"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if bl.Waited == 0 && bl.Rejected == 0 {
		t.Errorf("agent-batch never queued nor refused: %+v", bl)
	}
	t.Logf("flood: %d served, %d refused, %d other; agent-batch %+v", f.ok.Load(), f.refused.Load(), f.other.Load(), bl)
	if f.ok.Load() == 0 {
		t.Error("the flood got nothing served")
	}
	if f.other.Load() != 0 {
		t.Errorf("%d flood requests got neither 200 nor 429/503; the first: %s", f.other.Load(), f.odd)
	}
	checkRefusal(t, f.first, "agent-batch")
}

// TestGatewayIdentityIsVerifiedClass: the front door schedules by verified
// identity, never by what a request claims. Forged, tampered, garbage and
// wrong bootstrap credentials are scheduled as the anonymous client
// address (and refused 401 by the router); each failure is audited once,
// not once by the front door and again by the router; a verified token is
// scheduled as its principal.
func TestGatewayIdentityIsVerifiedClass(t *testing.T) {
	d, admin := startDaemonWith(t, floodConfig(), nil)
	ctx := context.Background()
	other, err := identity.LoadOrCreateCA(identity.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	claimed := spiffeid.RequireFromString("spiffe://agentcloud.local/user/batch-claimed")
	forged, _, err := other.IssueJWT(claimed, []string{security.APIAudience}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:carol"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good.Token, ".")
	cl, _ := base64.RawURLEncoding.DecodeString(parts[1])
	cl = bytes.Replace(cl, []byte("/user/carol"), []byte("/user/batch-claimed"), 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(cl) + "." + parts[2]
	bad := []string{forged, tampered, "not-a-jwt", "acb_wrong"}
	before, err := admin.Audit(ctx, client.AuditQuery{Type: "auth", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range bad {
		c, _ := client.New("http://"+d.Addr(), tok)
		_, err := c.WhoAmI(ctx)
		wantKind(t, fmt.Sprintf("bad credential %d", i), err, api.KindUnauthenticated, "")
	}
	after, err := admin.Audit(ctx, client.AuditQuery{Type: "auth", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(after.Events) - len(before.Events); n != len(bad) {
		t.Errorf("%d auth failures audited for %d refused requests; want one each", n, len(bad))
	}
	carol, _ := client.New("http://"+d.Addr(), good.Token)
	if who, err := carol.WhoAmI(ctx); err != nil || who.Principal != "spiffe://agentcloud.local/user/carol" {
		t.Fatalf("carol: %+v %v", who, err)
	}
	flows, err := admin.TrafficFlows(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	levels := map[string]string{}
	for _, f := range flows.Flows {
		levels[f.Flow] = f.Level
	}
	if levels[claimed.String()] != "" {
		t.Errorf("a claimed identity was scheduled: %v", levels)
	}
	if levels["ip:127.0.0.1"] != "anonymous" || levels["spiffe://agentcloud.local/user/carol"] != "human-interactive" ||
		levels["spiffe://agentcloud.local/admin/admin"] != "system" {
		t.Errorf("flows by level: %v", levels)
	}
}

// TestTrafficRoutesClass: /v1/traffic and /v1/traffic/flows are for
// administrators (Cedar traffic.read on the platform): a user is refused
// 403; bad query parameters are 400 naming the parameter.
func TestTrafficRoutesClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	tr, err := admin.Traffic(ctx, 5)
	if err != nil || tr.ConcurrencyLimit <= 0 || len(tr.Levels) != 5 {
		t.Fatalf("admin traffic: %+v %v", tr, err)
	}
	alice := userClient(t, d, admin, "user:alice")
	_, err = alice.Traffic(ctx, 5)
	wantKind(t, "user reading traffic", err, api.KindForbidden, "traffic.read")
	_, err = alice.TrafficFlows(ctx, "", 0)
	wantKind(t, "user reading flows", err, api.KindForbidden, "traffic.read")
	for _, q := range []struct{ path, field string }{
		{"/v1/traffic?top=-1", "top"},
		{"/v1/traffic?top=1001", "top"},
		{"/v1/traffic?top=abc", "top"},
		{"/v1/traffic?level=system", "level"},
		{"/v1/traffic/flows?limit=0", "limit"},
		{"/v1/traffic/flows?limit=99999999999999999999", "limit"},
		{"/v1/traffic/flows?level=nope", "level"},
		{"/v1/traffic/flows?level=" + strings.Repeat("x", 5000), "level"},
		{"/v1/traffic/flows?level=a&level=b", "level"},
		{"/v1/traffic/flows?by=nope", "by"},
	} {
		err := admin.Do(ctx, "GET", q.path, nil, nil)
		if p := api.AsProblem(err); !api.IsKind(err, api.KindInvalidQuery) || p.Field != q.field {
			t.Errorf("%.60s: %v (field %q), want invalid query on %s", q.path, err, p.Field, q.field)
		}
	}
}

// TestGatewayOverloadHeadersClass: when a level sheds load it says so: a
// level without queues refuses at once (503 overloaded, limit
// "concurrency"), a queue waited past its timeout is 503 queue-timeout
// (limit "queue"); both with Retry-After and problem+json naming the
// level, while a person in another level is still served.
func TestGatewayOverloadHeadersClass(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level func(l *config.PriorityLevel)
		kind  api.Kind
		limit string
	}{
		{"no queues", func(l *config.PriorityLevel) { l.Queues = 0 }, api.KindOverloaded, "concurrency"},
		{"queue timeout", func(l *config.PriorityLevel) {
			l.Queues, l.HandSize, l.QueueLength, l.QueueTimeout = 4, 2, 100, config.Duration(150*time.Millisecond)
		}, api.KindQueueTimeout, "queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := floodConfig()
			for i := range cfg.Gateway.Levels {
				if l := &cfg.Gateway.Levels[i]; l.Name == "agent-batch" {
					tc.level(l)
				}
			}
			d, admin := slowDaemon(t, cfg)
			var batch []*client.Client
			for i := 0; i < 10; i++ {
				batch = append(batch, userClient(t, d, admin, fmt.Sprintf("user:batch-%02d", i)))
			}
			human := userClient(t, d, admin, "user:alice")
			f := startFlood(batch, func(i int) string { return fmt.Sprintf("b%d", i%5) }, 3)
			defer f.end()
			deadline := time.Now().Add(30 * time.Second)
			for {
				f.mu.Lock()
				r := f.byKind[tc.kind.TypeURI()]
				f.mu.Unlock()
				if r != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s refusal after 30 s: %d served, %d refused", tc.kind, f.ok.Load(), f.refused.Load())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if who, err := human.WhoAmI(context.Background()); err != nil || who.Kind != "user" {
				t.Fatalf("human during the overload: %+v %v", who, err)
			}
			f.end()
			f.stop = make(chan struct{})
			r := f.byKind[tc.kind.TypeURI()]
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("%s: status %d", tc.kind, r.status)
			}
			checkRefusal(t, r, "agent-batch")
			var p api.Problem
			_ = json.Unmarshal(r.body, &p)
			if p.Limit != tc.limit {
				t.Errorf("%s: limit %q, want %q", tc.kind, p.Limit, tc.limit)
			}
		})
	}
}
