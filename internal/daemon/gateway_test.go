package daemon_test

import (
	"context"
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
	first   *refusal
}

func startFlood(clients []*client.Client, session func(i int) string, conc int) *flood {
	f := &flood{stop: make(chan struct{})}
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, "slow", session, "GET", "/", nil, nil)
	if err != nil {
		f.other.Add(1)
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
		if f.first == nil {
			f.first = &refusal{resp.StatusCode, resp.Header.Clone(), body}
		}
		f.mu.Unlock()
	default:
		f.other.Add(1)
	}
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
	hl, bl := level(t, admin, "human-interactive"), level(t, admin, "agent-batch")
	f.end()
	f.stop = make(chan struct{}) // end ran; the deferred one is a no-op
	if hl.Dispatched < 8 || hl.Waited != 0 || hl.Rejected != 0 || hl.TimedOut != 0 {
		t.Errorf("human-interactive under the flood: %+v; want 8 dispatched, none waited or refused", hl)
	}
	if bl.Waited == 0 && bl.Rejected == 0 {
		t.Errorf("agent-batch never queued nor refused: %+v", bl)
	}
	t.Logf("flood: %d served, %d refused, %d other; agent-batch %+v", f.ok.Load(), f.refused.Load(), f.other.Load(), bl)
	if f.ok.Load() == 0 {
		t.Error("the flood got nothing served")
	}
	if f.other.Load() != 0 {
		t.Errorf("%d flood requests got neither 200 nor 429/503", f.other.Load())
	}
	checkRefusal(t, f.first, "agent-batch")
}
