package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/prometheus/client_golang/prometheus"
)

// AuthzOptions configure Authz.
type AuthzOptions struct {
	// Tools granted to the agent.
	Tools int
	// Entities in the entity store (at least Tools+2).
	Entities int
	// Decisions to time (at least 100).
	Decisions int
	// Requests through the egress path to time (at least 10).
	Requests int
}

// AuthzResult is the result of Authz (`agentcloud bench authz`).
type AuthzResult struct {
	DecisionP50Us float64 `json:"decision_p50_us"`
	DecisionP99Us float64 `json:"decision_p99_us"`
	// DecisionAllocs and DecisionBytes are allocated per decision.
	DecisionAllocs float64 `json:"decision_allocs"`
	DecisionBytes  float64 `json:"decision_bytes"`
	Tools          int     `json:"tools"`
	Entities       int     `json:"entities"`
	Decisions      int     `json:"decisions"`
	// EgressOverheadP50Ms is EgressP50Ms minus DirectP50Ms: what the
	// egress path adds to a plain request.
	EgressOverheadP50Ms float64 `json:"egress_overhead_p50_ms"`
	// EgressP50Ms is what an allowed fetch() to a loopback upstream adds
	// to a session's request (manifest, policy, labels, secrets hook,
	// audit, the proxy): the median over pairs of requests to one session
	// with and without the fetch.
	EgressP50Ms float64 `json:"egress_p50_ms"`
	// DirectP50Ms is the same GET sent straight to the upstream.
	DirectP50Ms    float64 `json:"direct_p50_ms"`
	EgressRequests int     `json:"egress_requests"`
}

// Authz measures Cedar decisions against entity data of the given size,
// and the egress path's overhead in an in-process daemon.
func Authz(ctx context.Context, opts AuthzOptions) (*AuthzResult, error) {
	if opts.Tools < 1 || opts.Entities < opts.Tools+2 || opts.Decisions < 100 || opts.Requests < 10 {
		return nil, errors.New("bench authz: want Tools >= 1, Entities > Tools+1, Decisions >= 100, Requests >= 10")
	}
	res := &AuthzResult{Tools: opts.Tools, Entities: opts.Entities, Decisions: opts.Decisions, EgressRequests: opts.Requests}
	if err := benchDecisions(ctx, res); err != nil {
		return nil, err
	}
	if err := benchEgress(ctx, res); err != nil {
		return nil, err
	}
	return res, nil
}

// benchDecisions times Engine.Decide for sessions calling tools granted in
// entity data and fetching hosts, against the default policy set, with
// its metrics registered as the daemon registers them.
func benchDecisions(ctx context.Context, res *AuthzResult) error {
	eng, err := policy.New(policy.Config{Metrics: prometheus.NewRegistry()})
	if err != nil {
		return err
	}
	ents := types.EntityMap{}
	add := func(uid types.EntityUID, attrs types.RecordMap) {
		ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	}
	toolUIDs := make([]types.Value, res.Tools)
	for i := range res.Tools {
		u := policy.NewUID(policy.TypeTool, "tool-"+strconv.Itoa(i))
		toolUIDs[i] = u
		add(u, nil)
	}
	host := policy.NewUID(policy.TypeHost, "api.example.com")
	add(host, nil)
	agent := policy.NewUID(policy.TypeAgent, "bench")
	owner := policy.NewUID(policy.TypeUser, "owner")
	add(owner, nil)
	add(agent, types.RecordMap{"owner": owner, "tools": types.NewSet(toolUIDs...), "hosts": types.NewSet(host)})
	sess := policy.NewUID(policy.TypeSession, "bench/s1")
	add(sess, types.RecordMap{"agent": agent, "owner": owner})
	for i := 0; len(ents) < res.Entities; i++ {
		u := policy.NewUID(policy.TypeUser, "user-"+strconv.Itoa(i))
		add(u, nil)
		if len(ents) < res.Entities {
			add(policy.NewUID(policy.TypeSession, "other-"+strconv.Itoa(i)+"/s"), types.RecordMap{"agent": agent, "owner": u})
		}
	}
	res.Entities = len(ents)
	reqs := make([]policy.Request, res.Decisions)
	for i := range reqs {
		reqs[i] = policy.Request{Principal: sess, Action: "tool.call", Resource: toolUIDs[rand.IntN(len(toolUIDs))].(types.EntityUID)}
		if i%4 == 3 {
			reqs[i] = policy.Request{Principal: sess, Action: "egress.fetch", Resource: host,
				Labels: policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData}}
		}
	}
	// Warm up over every request first, then collect the setup's garbage:
	// this times a long-running daemon's steady state, not a fresh
	// process's first touches. In a fresh process the tail was the heap
	// growing (about one decision in 40 met freshly mapped pages, 25-60 us
	// each) and the GC of the 10,000 entities just built, not the decision.
	for _, req := range reqs {
		if _, err := eng.Decide(ctx, ents, req); err != nil {
			return err
		}
	}
	runtime.GC()
	lat := make([]time.Duration, 0, res.Decisions)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, req := range reqs {
		start := time.Now()
		d, err := eng.Decide(ctx, ents, req)
		lat = append(lat, time.Since(start))
		if err != nil {
			return err
		}
		if req.Action == "tool.call" && !d.Allowed {
			return fmt.Errorf("bench decision unexpectedly denied: %+v", d)
		}
	}
	runtime.ReadMemStats(&after)
	n := float64(res.Decisions)
	res.DecisionAllocs = float64(after.Mallocs-before.Mallocs) / n
	res.DecisionBytes = float64(after.TotalAlloc-before.TotalAlloc) / n
	res.DecisionP50Us, res.DecisionP99Us = pctIn(lat, 50, time.Microsecond), pctIn(lat, 99, time.Microsecond)
	return nil
}

// egressHost is the stand-in name of the loopback upstream; the daemon's
// egress_loopback_hosts setting resolves it to 127.0.0.1.
const egressHost = "bench.test"

// egressAgent fetches UPSTREAM on /fetch and answers "x" on every path.
const egressAgent = `export default {
  async fetch(request) {
    if (new URL(request.url).pathname === "/fetch") {
      const r = await fetch("UPSTREAM");
      if (!r.ok) throw new Error("upstream answered " + r.status);
      await r.text();
    }
    return new Response("x");
  }
};`

// benchEgress times an allowed GET to a loopback upstream directly and
// from a session's fetch() (manifest, policy, labels, secrets hook, audit),
// in an in-process daemon whose egress proxy resolves egressHost to the
// upstream.
func benchEgress(ctx context.Context, res *AuthzResult) error {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	port := up.Listener.Addr().String()
	port = port[strings.LastIndex(port, ":")+1:]
	n, err := connect(ctx, Target{}, 2, func(cfg *config.Config) {
		cfg.EgressLoopbackHosts = []string{egressHost}
	})
	if err != nil {
		return err
	}
	defer n.stop()
	upstream := "http://" + egressHost + ":" + port + "/"
	if err := deploy(ctx, n.c, `{"name":"egress-bench","entry":"agent.js","egress":["`+egressHost+`:`+port+`"]}`,
		strings.Replace(egressAgent, "UPSTREAM", upstream, 1)); err != nil {
		return err
	}
	if err := n.c.SetTrustedHosts(ctx, []string{egressHost}); err != nil {
		return err
	}
	call := func(path string) (time.Duration, error) {
		t0 := time.Now()
		err := get(ctx, n.c, path)
		return time.Since(t0), err
	}
	direct := func() (time.Duration, error) {
		t0 := time.Now()
		resp, err := up.Client().Get(up.URL)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return time.Since(t0), resp.Body.Close()
	}
	var dl, el []time.Duration
	for i := range res.EgressRequests + 10 { // the first 10 warm connections and caches
		d, err := direct()
		if err != nil {
			return fmt.Errorf("direct request: %w", err)
		}
		base, err := call("/")
		if err != nil {
			return fmt.Errorf("session request: %w", err)
		}
		via, err := call("/fetch")
		if err != nil {
			return fmt.Errorf("egress request: %w", err)
		}
		if i >= 10 {
			dl, el = append(dl, d), append(el, via-base)
		}
	}
	res.DirectP50Ms, res.EgressP50Ms = pctIn(dl, 50, time.Millisecond), pctIn(el, 50, time.Millisecond)
	res.EgressOverheadP50Ms = res.EgressP50Ms - res.DirectP50Ms
	return nil
}

// get calls session s1 of egress-bench at path and wants a 200.
func get(ctx context.Context, c *client.Client, path string) error {
	resp, err := c.Call(ctx, "egress-bench", "s1", "GET", path, nil, nil)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", path, resp.StatusCode, b)
	}
	return nil
}
