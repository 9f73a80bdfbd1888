package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/telemetry"
	"github.com/agentcloud/agentcloud/internal/telemetry/otlptest"
)

const (
	claimedTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	claimedSpan  = "00f067aa0ba902b7"
	claimed      = "00-" + claimedTrace + "-" + claimedSpan + "-01"
)

// startTracing starts tracing to rcv with every trace sampled.
func startTracing(t *testing.T, endpoint string, queue int) *telemetry.Tracing {
	t.Helper()
	tr, err := telemetry.New(context.Background(), config.TracingConfig{OTLPEndpoint: endpoint, SampleRatio: 1, QueueSize: queue}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// server serves h behind tr.Wrap; a request with X-Trusted: yes is a
// trusted caller. The handler sends an outbound request to site with the
// trace context injected, as the egress proxy does.
func server(t *testing.T, tr *telemetry.Tracing, site string) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := telemetry.StartClient(r.Context(), "outbound", "k", "v")
		defer span.End()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, site, nil)
		telemetry.Inject(ctx, req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		telemetry.Route(r.Context(), r.Method, "/x", 200)
		io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(tr.Wrap(h, func(r *http.Request) bool { return r.Header.Get("X-Trusted") == "yes" }))
	t.Cleanup(srv.Close)
	return srv
}

// TestTraceContextTrustClass: a trusted caller's traceparent is continued;
// an untrusted caller's valid one starts a new trace linked to the claimed
// one; every malformed one is ignored (a new trace, no link, never a 5xx);
// the outbound request carries the server's trace.
func TestTraceContextTrustClass(t *testing.T) {
	rcv := otlptest.New(t)
	tr := startTracing(t, rcv.URL(), 1024)
	seen := make(chan string, 64)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Get("Traceparent") }))
	t.Cleanup(site.Close)
	srv := server(t, tr, site.URL)
	cases := []struct {
		name, traceparent string
		trusted           bool
		wantTrace         string // "" = a new trace
		wantLink          bool
	}{
		{"trusted", claimed, true, claimedTrace, false},
		{"untrusted", claimed, false, "", true},
		{"none", "", true, "", false},
		{"garbage", "hello", true, "", false},
		{"bad version", "ff-" + claimedTrace + "-" + claimedSpan + "-01", true, "", false},
		{"zero trace id", "00-00000000000000000000000000000000-" + claimedSpan + "-01", true, "", false},
		{"zero span id", "00-" + claimedTrace + "-0000000000000000-01", true, "", false},
		{"upper case", "00-" + strings.ToUpper(claimedTrace) + "-" + claimedSpan + "-01", true, "", false},
		{"short", "00-" + claimedTrace[:31] + "-" + claimedSpan + "-01", true, "", false},
		{"huge", "00-" + claimedTrace + "-" + claimedSpan + "-01" + strings.Repeat("x", 16<<10), true, "", false},
		{"non-hex", "00-" + strings.Repeat("z", 32) + "-" + claimedSpan + "-01", true, "", false},
	}
	paths := map[string]string{}
	for i, tc := range cases {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/case/"+string(rune('a'+i)), nil)
		if tc.traceparent != "" {
			req.Header.Set("Traceparent", tc.traceparent)
			req.Header.Set("Tracestate", "vendor=x")
		}
		if tc.trusted {
			req.Header.Set("X-Trusted", "yes")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d, want 200", tc.name, resp.StatusCode)
		}
		paths[tc.name] = req.URL.Path
		got := <-seen
		if len(got) != 55 || !strings.HasPrefix(got, "00-") {
			t.Errorf("%s: outbound traceparent %q is not the server's trace context", tc.name, got)
		}
		if tc.wantTrace != "" && !strings.Contains(got, tc.wantTrace) {
			t.Errorf("%s: outbound traceparent %q does not continue trace %s", tc.name, got, tc.wantTrace)
		}
		if tc.wantTrace == "" && strings.Contains(got, claimedTrace) {
			t.Errorf("%s: outbound traceparent %q continues the caller's trace", tc.name, got)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	for _, tc := range cases {
		var server otlptest.Span
		for _, s := range spans {
			if s.Attrs["url.path"] == paths[tc.name] {
				server = s
			}
		}
		if server.SpanID == "" {
			t.Errorf("%s: no server span", tc.name)
			continue
		}
		if server.Name != "GET /x" || server.Attrs["http.response.status_code"] != "200" || server.Service != "agentcloud" {
			t.Errorf("%s: server span %+v", tc.name, server)
		}
		if tc.wantTrace != "" && (server.TraceID != tc.wantTrace || server.ParentID != claimedSpan) {
			t.Errorf("%s: server span in trace %s under %s, want %s under %s", tc.name, server.TraceID, server.ParentID, tc.wantTrace, claimedSpan)
		}
		if tc.wantTrace == "" && (server.TraceID == claimedTrace || server.ParentID != "") {
			t.Errorf("%s: server span continues the claimed trace: %+v", tc.name, server)
		}
		if linked := len(server.LinkTraceIDs) == 1 && server.LinkTraceIDs[0] == claimedTrace; linked != tc.wantLink {
			t.Errorf("%s: links %v, want a link to the claimed trace: %v", tc.name, server.LinkTraceIDs, tc.wantLink)
		}
		out, ok := otlptest.Named(otlptest.Trace(spans, server.TraceID), "outbound")
		if !ok || out.ParentID != server.SpanID || out.Attrs["k"] != "v" {
			t.Errorf("%s: outbound span %+v is not the server span's child", tc.name, out)
		}
	}
}

// TestExporterDownDoesNotBlock: with a collector that never answers and a
// queue of 4 spans, 300 requests are served (newer spans are dropped), and
// Shutdown returns within its bound.
func TestExporterDownDoesNotBlock(t *testing.T) {
	rcv := otlptest.NewHanging(t)
	tr := startTracing(t, rcv.URL(), 4)
	site := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(site.Close)
	srv := server(t, tr, site.URL)
	for i := range 300 {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestLoggerCarriesTraceIDs: lines logged inside a span carry its trace_id
// and span_id; lines outside do not; tracing off returns the same logger.
func TestLoggerCarriesTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, nil))
	if telemetry.Logger(config.TracingConfig{}, base) != base {
		t.Error("tracing off wrapped the logger")
	}
	rcv := otlptest.New(t)
	cfg := config.TracingConfig{OTLPEndpoint: rcv.URL(), SampleRatio: 1, QueueSize: 16}
	tr := startTracing(t, cfg.OTLPEndpoint, cfg.QueueSize)
	defer tr.Shutdown(context.Background())
	log := telemetry.Logger(cfg, base).With("component", "x").WithGroup("g")
	var traceID, spanID string
	h := tr.Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx, span := telemetry.Start(r.Context(), "inner")
		defer span.End()
		traceID, spanID = span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String()
		log.InfoContext(ctx, "inside", "a", 1)
	}), nil)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	log.InfoContext(context.Background(), "outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	var in, out map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &in)
	_ = json.Unmarshal([]byte(lines[1]), &out)
	g, _ := in["g"].(map[string]any)
	if g["trace_id"] != traceID || g["span_id"] != spanID || in["component"] != "x" {
		t.Errorf("inside: %s (want trace %s span %s)", lines[0], traceID, spanID)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("outside: %s", lines[1])
	}
}

// TestTracingOffCostsNothing: outside a trace Start, StartClient, End,
// Inject and Route allocate nothing, and a nil or unstarted Tracing
// leaves handlers as they are.
func TestTracingOffCostsNothing(t *testing.T) {
	ctx := context.Background()
	h := make(http.Header)
	allocs := testing.AllocsPerRun(100, func() {
		c, span := telemetry.Start(ctx, "x", "agent", "a", "session", "s")
		_, span2 := telemetry.StartClient(c, "y", "k", "v")
		telemetry.Inject(c, h)
		telemetry.Route(c, "GET", "/r", 200)
		telemetry.End(span2, nil)
		telemetry.End(span, io.EOF)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per call with tracing off, want 0", allocs)
	}
	if len(h) != 0 {
		t.Errorf("Inject outside a trace wrote %v", h)
	}
	next := plain{}
	var nilT *telemetry.Tracing
	for _, tr := range []*telemetry.Tracing{nilT, telemetry.Configure(config.TracingConfig{}, nil)} {
		if err := tr.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := tr.Wrap(next, nil); got != http.Handler(next) {
			t.Error("tracing off wrapped the handler")
		}
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

type plain struct{}

func (plain) ServeHTTP(http.ResponseWriter, *http.Request) {}

// BenchmarkStartOff is the cost of a hook with tracing off.
func BenchmarkStartOff(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, span := telemetry.Start(ctx, "session.invoke", "agent", "a", "session", "s")
		telemetry.End(span, nil)
		_ = c
	}
}

// FuzzWrapTraceContext: any traceparent and tracestate from an untrusted
// caller leave the request served, in a new trace (never the claimed
// one); from a trusted caller, a context is continued only when valid.
func FuzzWrapTraceContext(f *testing.F) {
	for _, s := range []string{claimed, "", "hello", "ff-" + claimedTrace + "-" + claimedSpan + "-01",
		"00-" + strings.Repeat("0", 32) + "-" + claimedSpan + "-01", claimed + "-extra", strings.ToUpper(claimed)} {
		f.Add(s, "vendor=x", false)
		f.Add(s, strings.Repeat("k=v,", 40), true)
	}
	tr, err := telemetry.New(context.Background(), config.TracingConfig{OTLPEndpoint: "http://127.0.0.1:1/v1/traces", SampleRatio: 1, QueueSize: 16}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, traceparent, tracestate string, trusted bool) {
		var got trace.SpanContext
		h := tr.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got = trace.SpanContextFromContext(r.Context())
		}), func(*http.Request) bool { return trusted })
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["Traceparent"] = []string{traceparent}
		req.Header["Tracestate"] = []string{tracestate}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !got.IsValid() {
			t.Fatalf("status %d, span %v", rec.Code, got)
		}
		remote := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(req.Header)))
		if continued := got.TraceID() == remote.TraceID(); continued != (trusted && remote.IsValid()) {
			t.Fatalf("trusted=%v valid=%v: continued=%v", trusted, remote.IsValid(), continued)
		}
	})
}
