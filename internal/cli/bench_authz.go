package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/spf13/cobra"
)

// AuthzBench is the result of `agentcloud bench authz`.
type AuthzBench struct {
	DecisionP50Us       float64 `json:"decision_p50_us"`
	DecisionP99Us       float64 `json:"decision_p99_us"`
	Tools               int     `json:"tools"`
	Entities            int     `json:"entities"`
	Decisions           int     `json:"decisions"`
	EgressOverheadP50Ms float64 `json:"egress_overhead_p50_ms"`
	EgressP50Ms         float64 `json:"egress_p50_ms"`
	DirectP50Ms         float64 `json:"direct_p50_ms"`
	EgressRequests      int     `json:"egress_requests"`
}

func newBenchAuthzCmd(g *globals) *cobra.Command {
	var (
		tools, entities, decisions, requests int
		asJSON                               bool
	)
	cmd := &cobra.Command{
		Use:   "authz",
		Short: "Benchmark Cedar decisions (1,000 tools, 10,000 entities) and egress proxy overhead (in-process daemon)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tools < 1 || entities < tools+2 || decisions < 100 || requests < 10 {
				return fmt.Errorf("want --tools >= 1, --entities > --tools, --decisions >= 100, --requests >= 10")
			}
			res := &AuthzBench{Tools: tools, Entities: entities, Decisions: decisions, EgressRequests: requests}
			if err := benchDecisions(cmd.Context(), res); err != nil {
				return err
			}
			if err := benchEgress(cmd.Context(), res); err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&tools, "tools", 1000, "tools granted to the agent")
	f.IntVar(&entities, "entities", 10000, "entities in the store")
	f.IntVar(&decisions, "decisions", 20000, "decisions to time")
	f.IntVar(&requests, "requests", 300, "egress requests to time")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// benchDecisions times Engine.Decide for sessions calling tools granted in
// entity data and fetching hosts, against the default policy set.
func benchDecisions(ctx context.Context, res *AuthzBench) error {
	eng, err := policy.New(policy.Config{})
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
	lat := make([]time.Duration, 0, res.Decisions)
	for i := range res.Decisions {
		req := policy.Request{Principal: sess, Action: "tool.call", Resource: toolUIDs[rand.IntN(len(toolUIDs))].(types.EntityUID)}
		if i%4 == 3 {
			req = policy.Request{Principal: sess, Action: "egress.fetch", Resource: host,
				Labels: policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData}}
		}
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
	res.DecisionP50Us, res.DecisionP99Us = authzPct(lat, 50, time.Microsecond), authzPct(lat, 99, time.Microsecond)
	return nil
}

type benchResolver struct{}

func (benchResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// benchEgress times an allowed GET to a loopback upstream directly and
// through a session's egress path (manifest, policy, labels, secrets hook,
// audit), in an in-process daemon.
func benchEgress(ctx context.Context, res *AuthzBench) error {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	dir, err := os.MkdirTemp("", "agentcloud-bench-authz-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := config.Default()
	cfg.Data, cfg.Listen = dir, "127.0.0.1:0"
	d, err := daemon.New(cfg, nil)
	if err != nil {
		return err
	}
	d.SetEgressTestHooks(daemon.EgressTestHooks{Resolver: benchResolver{}, AllowLoopback: true})
	if err := d.Start(ctx); err != nil {
		return err
	}
	defer d.Shutdown(context.Background())
	tok, _ := os.ReadFile(filepath.Join(dir, auth.TokenFile))
	c, err := client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)))
	if err != nil {
		return err
	}
	port := up.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndex(port, ":")+1:]
	b, err := bundle.FromFiles(map[string][]byte{
		"agent.json": []byte(`{"name":"egress-bench","entry":"agent.js","egress":["bench.test:` + port + `"]}`),
		"agent.js":   []byte(`export default { fetch() { return new Response("x"); } };`)})
	if err != nil {
		return err
	}
	tgz, _ := b.TarGz()
	if _, err := c.Deploy(ctx, tgz); err != nil {
		return fmt.Errorf("deploy bench agent: %w", err)
	}
	if err := c.SetTrustedHosts(ctx, []string{"bench.test"}); err != nil {
		return err
	}
	via := func() error {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://bench.test:"+port+"/", nil)
		resp, err := d.FetchAsSession(ctx, "egress-bench", "s1", req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	direct := func() error {
		resp, err := up.Client().Get(up.URL)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	timeIt := func(f func() error) ([]time.Duration, error) {
		for range 10 { // warm connections and caches
			if err := f(); err != nil {
				return nil, err
			}
		}
		lat := make([]time.Duration, 0, res.EgressRequests)
		for range res.EgressRequests {
			start := time.Now()
			if err := f(); err != nil {
				return nil, err
			}
			lat = append(lat, time.Since(start))
		}
		return lat, nil
	}
	dl, err := timeIt(direct)
	if err != nil {
		return fmt.Errorf("direct request: %w", err)
	}
	el, err := timeIt(via)
	if err != nil {
		return fmt.Errorf("egress request: %w", err)
	}
	res.DirectP50Ms, res.EgressP50Ms = authzPct(dl, 50, time.Millisecond), authzPct(el, 50, time.Millisecond)
	res.EgressOverheadP50Ms = res.EgressP50Ms - res.DirectP50Ms
	return nil
}

// authzPct returns the p-th percentile of d in units of unit.
func authzPct(d []time.Duration, p int, unit time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return float64(s[i]) / float64(unit)
}
