package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway"
)

// discard is a ResponseWriter that keeps nothing, so benchmarks measure the
// gateway and not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func benchGateway(b *testing.B) http.Handler {
	b.Helper()
	cfg := config.DefaultGateway()
	// Limits far above what a benchmark reaches: measure the path, not
	// refusals.
	cfg.RateLimits = []config.RateLimit{
		{Name: "identity", Quota: 1_000_000_000, Window: config.Duration(time.Second), Key: "identity"},
		{Name: "tool", Quota: 1_000_000_000, Window: config.Duration(time.Second), Key: "identity+tool", Match: []config.FlowMatch{{MCPMethods: []string{"tools/call"}}}},
	}
	id := gateway.Identity{Kind: gateway.KindSession, ID: "spiffe://agentcloud.local/agent/notes/session/s1", Method: gateway.MethodJWT, Agent: "notes"}
	gw, err := gateway.New(cfg, gateway.Deps{Identifier: gateway.IdentifierFunc(func(r *http.Request) (gateway.Identity, error) {
		if r.Header.Get("Authorization") == "" {
			return gateway.Identity{}, nil
		}
		return id, nil // the daemon's authenticator runs here; its cost is not the gateway's
	})})
	if err != nil {
		b.Fatal(err)
	}
	return gw.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
}

var benchCases = []struct {
	name string
	req  func() *http.Request
}{
	{"identified", func() *http.Request {
		r := httptest.NewRequest("GET", "/v1/agents/notes", nil)
		r.Header.Set("Authorization", "Bearer x")
		return r
	}},
	{"anonymous", func() *http.Request { return httptest.NewRequest("GET", "/v1/agents/notes", nil) }},
	{"mcp-tool-call", func() *http.Request {
		r := httptest.NewRequest("POST", "/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"state_get","arguments":{"key":"k"}}}`))
		r.Header.Set("Authorization", "Bearer x")
		r.Header.Set("Content-Type", "application/json")
		return r
	}},
}

// BenchmarkGatewayOverhead is the gateway's cost per request in front of a
// handler that does nothing (ns/op, allocations).
func BenchmarkGatewayOverhead(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			h := benchGateway(b)
			w := &discard{h: http.Header{}}
			body := bc.name == "mcp-tool-call"
			r := bc.req()
			b.ReportAllocs()
			for b.Loop() {
				if body {
					r = bc.req()
				}
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkGatewayOverheadParallel is the same under contention from all
// cores, many identities.
func BenchmarkGatewayOverheadParallel(b *testing.B) {
	h := benchGateway(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		r := benchCases[0].req()
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkGatewayLatencyPercentiles records every request's time through
// the gateway and reports the p50, p99 and p999 in microseconds (targets:
// p50 <= 20us, p99 <= 200us).
func BenchmarkGatewayLatencyPercentiles(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			h := benchGateway(b)
			w := &discard{h: http.Header{}}
			lat := make([]time.Duration, 0, b.N)
			body := bc.name == "mcp-tool-call"
			r := bc.req()
			for b.Loop() {
				if body {
					r = bc.req()
				}
				clear(w.h)
				start := time.Now()
				h.ServeHTTP(w, r)
				lat = append(lat, time.Since(start))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			at := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1000
			}
			b.ReportMetric(at(0.50), "p50-us")
			b.ReportMetric(at(0.99), "p99-us")
			b.ReportMetric(at(0.999), "p999-us")
		})
	}
}
