package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewaytest"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// GatewayOptions configure Gateway.
type GatewayOptions struct {
	// Requests to time through the gateway for its overhead (at least
	// 1000).
	Requests int
	// Unloaded and Phase are how long the flood scenario's human runs
	// alone and each flood phase lasts (zero: the harness's defaults,
	// 4 s and 8 s).
	Unloaded, Phase time.Duration
	// NoFlood skips the flood scenario (overhead only).
	NoFlood bool
	// Plot, when set, receives an SVG of the human's latency over time in
	// each phase.
	Plot string
	// AgentProcess, when set, is the command line of the process the
	// flooding agents run in (gatewaytest.FloodConfig.AgentProcess; it
	// must call FloodAgentProcess first). Empty: in this process.
	AgentProcess []string
}

// FloodAgentProcess floods as the agents when this process was started as
// the flood's agent process, and then reports true (exit after it).
func FloodAgentProcess() (bool, error) { return gatewaytest.RunAgentProcess() }

// GatewayResult is the result of Gateway (`agentcloud bench gateway`).
type GatewayResult struct {
	// OverheadP50Us and OverheadP99Us are the front door's own time per
	// request in front of a handler that does nothing: identity already
	// established, flow schemas, rate limits, the scheduler, headers
	// (targets: p50 <= 20 us, p99 <= 200 us). Requests is how many were
	// timed, over a mix of identified, anonymous and MCP tool calls.
	OverheadP50Us float64 `json:"overhead_p50_us"`
	OverheadP99Us float64 `json:"overhead_p99_us"`
	// OverheadJWTP50Us and OverheadJWTP99Us add verifying a real
	// JWT-SVID (what the daemon's front door does; the router then trusts
	// it and does not verify again).
	OverheadJWTP50Us float64 `json:"overhead_jwt_p50_us"`
	OverheadJWTP99Us float64 `json:"overhead_jwt_p99_us"`
	Requests         int     `json:"requests"`
	// Flood is the flood scenario: a human at a steady low rate while 50
	// agents offer ten times the capacity, with classes on and off
	// (human_p99_ms_unloaded, _flood_classes_on, _flood_classes_off,
	// agent_goodput, jain, ...).
	Flood *gatewaytest.FloodReport `json:"flood,omitempty"`
	// HumanP99Ratio is human_p99_ms_flood_classes_on over
	// human_p99_ms_unloaded timed on the wire (target <= 1.5);
	// HumanSchedP99Ratio the same as the scheduler counts it (service time
	// plus queue wait), which machine load does not move.
	HumanP99Ratio      float64 `json:"human_p99_ratio_classes_on,omitempty"`
	HumanSchedP99Ratio float64 `json:"human_sched_p99_ratio_classes_on,omitempty"`
	Plot               string  `json:"plot,omitempty"`
}

// Gateway measures the front door: its overhead per request in process,
// and the flood scenario on loopback (gatewaytest.Flood), optionally
// plotted.
func Gateway(ctx context.Context, opts GatewayOptions) (*GatewayResult, error) {
	if opts.Requests < 1000 {
		return nil, errors.New("bench gateway: want Requests >= 1000")
	}
	dir, err := os.MkdirTemp("", "agentcloud-bench-gateway-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &GatewayResult{Requests: opts.Requests}
	if err := gatewayOverhead(res, dir); err != nil {
		return nil, err
	}
	if opts.NoFlood {
		return res, nil
	}
	fc := gatewaytest.DefaultFloodConfig()
	if opts.Unloaded > 0 {
		fc.Unloaded = opts.Unloaded
	}
	if opts.Phase > 0 {
		fc.Phase = opts.Phase
	}
	fc.Dir, fc.SVGPath, fc.AgentProcess = dir, opts.Plot, opts.AgentProcess
	if res.Flood, err = gatewaytest.Flood(ctx, fc); err != nil {
		return nil, fmt.Errorf("bench gateway: %w", err)
	}
	res.HumanP99Ratio, res.HumanSchedP99Ratio = res.Flood.Ratio(), res.Flood.SchedRatio()
	res.Plot = opts.Plot
	return res, nil
}

// nopWriter keeps nothing, so the overhead is the gateway's and not a
// recorder's.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// gatewayOverhead times requests through a gateway with the default
// levels and flow schemas and rate limits too high to refuse, first with
// the identity given (the gateway's own cost), then verifying real
// JWT-SVIDs.
func gatewayOverhead(res *GatewayResult, dir string) error {
	ids, err := gatewaytest.NewIdentities(dir)
	if err != nil {
		return err
	}
	tok, err := ids.Token(identity.KindSession, "notes/s1")
	if err != nil {
		return err
	}
	cfg := config.DefaultGateway()
	cfg.RateLimits = []config.RateLimit{
		{Name: "identity", Quota: 1_000_000_000, Window: config.Duration(time.Second), Key: "identity"},
		{Name: "tool", Quota: 1_000_000_000, Window: config.Duration(time.Second), Key: "identity+tool", Match: []config.FlowMatch{{MCPMethods: []string{"tools/call"}}}},
	}
	given := gateway.Identity{Kind: gateway.KindSession, ID: "spiffe://agentcloud.local/agent/notes/session/s1", Method: gateway.MethodJWT, Agent: "notes"}
	stub := gateway.IdentifierFunc(func(r *http.Request) (gateway.Identity, error) {
		if r.Header.Get("Authorization") == "" {
			return gateway.Identity{}, nil
		}
		return given, nil
	})
	for _, run := range []struct {
		id       gateway.Identifier
		p50, p99 *float64
	}{{stub, &res.OverheadP50Us, &res.OverheadP99Us}, {ids, &res.OverheadJWTP50Us, &res.OverheadJWTP99Us}} {
		gw, err := gateway.New(cfg, gateway.Deps{Identifier: run.id})
		if err != nil {
			return err
		}
		h := gw.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		w := &nopWriter{h: http.Header{}}
		lat := make([]time.Duration, 0, res.Requests)
		for i := range res.Requests {
			r := overheadRequest(i, tok)
			clear(w.h)
			start := time.Now()
			h.ServeHTTP(w, r)
			lat = append(lat, time.Since(start))
		}
		*run.p50, *run.p99 = pctIn(lat, 50, time.Microsecond), pctIn(lat, 99, time.Microsecond)
	}
	return nil
}

// overheadRequest is the i-th request of the mix: identified GETs,
// anonymous GETs and MCP tool calls.
func overheadRequest(i int, tok string) *http.Request {
	switch i % 4 {
	case 1:
		return httptest.NewRequest("GET", "/v1/agents/notes", nil)
	case 3:
		r := httptest.NewRequest("POST", "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"state_get","arguments":{"key":"k"}}}`))
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	r := httptest.NewRequest("GET", "/v1/agents/notes", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}
