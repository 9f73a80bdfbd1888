// Package telemetry owns agentcloud's OpenTelemetry traces: the tracer
// provider with its OTLP/HTTP exporter and bounded queue (New, Shutdown),
// the server span every API request gets (Wrap), the W3C trace context it
// reads from trusted callers and writes into outbound requests (Inject),
// the spans the parts open with Start, and a slog handler that adds
// trace_id and span_id to log lines written inside a span (Logger).
//
// Tracing is off by default. Then New returns nil, Wrap and Logger
// return what they were given, and Start finds no span in the context and
// returns at once without allocating: the parts' hooks cost one context
// lookup. The tracer travels in the context with the request's span (the
// span knows its provider), so no part holds a tracer and there is no
// global provider. The package does not decide whom to trust: the caller
// of Wrap passes that in (the gateway knows who a request is from). It
// does not hold metrics (Prometheus does).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/version"
)

// scope is the instrumentation scope of every span.
const scope = "github.com/agentcloud/agentcloud"

// exportTimeout bounds one export to the collector.
const exportTimeout = 5 * time.Second

// propagator reads and writes traceparent and tracestate.
var propagator = propagation.TraceContext{}

// Tracing is the tracer provider, a part with a Start and a Shutdown.
// Until Start ran with an endpoint configured (and for a nil *Tracing)
// tracing is off.
type Tracing struct {
	cfg    config.TracingConfig
	log    *slog.Logger
	tp     *sdktrace.TracerProvider // nil: off
	tracer trace.Tracer
}

// Configure returns the tracing part for cfg; export failures will go to
// log, at most one line a minute. It starts nothing.
func Configure(cfg config.TracingConfig, log *slog.Logger) *Tracing {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracing{cfg: cfg, log: log}
}

// New is Configure and Start: it returns nil (off) when cfg.OTLPEndpoint
// is empty.
func New(ctx context.Context, cfg config.TracingConfig, log *slog.Logger) (*Tracing, error) {
	if cfg.OTLPEndpoint == "" {
		return nil, nil
	}
	t := Configure(cfg, log)
	return t, t.Start(ctx)
}

func (t *Tracing) on() bool { return t != nil && t.tp != nil }

// Start builds the provider and its exporter when an endpoint is
// configured (nothing is sent until the first batch of spans).
func (t *Tracing) Start(context.Context) error {
	if t == nil || t.cfg.OTLPEndpoint == "" || t.tp != nil {
		return nil
	}
	cfg, log := t.cfg, t.log
	u, err := config.TracesURL(cfg.OTLPEndpoint)
	if err != nil {
		return fmt.Errorf("tracing.otlp_endpoint: %w", err)
	}
	exp := newOTLPExporter(u.String())
	res := resource.NewSchemaless(attribute.String("service.name", "agentcloud"), attribute.String("service.version", version.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		// Non-blocking: a full queue drops the newest spans.
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: log},
			sdktrace.WithMaxQueueSize(cfg.QueueSize),
			sdktrace.WithMaxExportBatchSize(min(512, cfg.QueueSize)),
			sdktrace.WithExportTimeout(exportTimeout)),
	)
	t.tp, t.tracer = tp, tp.Tracer(scope, trace.WithInstrumentationVersion(version.Version))
	return nil
}

// Shutdown exports what is queued (within ctx) and stops. Nil-safe.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.on() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	if err := t.tp.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// loggingExporter reports failed exports to the daemon's log (at most one
// line a minute) instead of OpenTelemetry's global error handler.
type loggingExporter struct {
	sdktrace.SpanExporter
	log  *slog.Logger
	last atomic.Int64 // unix nanoseconds of the last line
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		now, last := time.Now().UnixNano(), e.last.Load()
		if now-last > int64(time.Minute) && e.last.CompareAndSwap(last, now) {
			e.log.Warn("trace export failed; spans are dropped while the collector does not answer", "spans", len(spans), "err", err)
		}
	}
	return nil
}

// Wrap gives every request through next a server span. The W3C trace
// context a request carries is followed only when trusted(r) says so;
// otherwise (and when it is malformed) the request starts a new trace,
// linked to the one it claimed. Tracing off returns next.
func (t *Tracing) Wrap(next http.Handler, trusted func(*http.Request) bool) http.Handler {
	if !t.on() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method), attribute.String("url.path", clip(r.URL.Path, 256)))}
		if remote := trace.SpanContextFromContext(propagator.Extract(ctx, propagation.HeaderCarrier(r.Header))); remote.IsValid() {
			if trusted != nil && trusted(r) {
				ctx = trace.ContextWithRemoteSpanContext(ctx, remote)
			} else {
				opts = append(opts, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: remote,
					Attributes: []attribute.KeyValue{attribute.String("agentcloud.link", "untrusted caller's trace context")}}))
			}
		}
		ctx, span := t.tracer.Start(ctx, "HTTP "+r.Method, opts...)
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Route names the request's server span after its route and records the
// response status (the router calls it once the handler is done).
func Route(ctx context.Context, method, route string, status int) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(method + " " + route)
	span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// noopSpan is what Start returns outside a trace.
var noopSpan trace.Span = noop.Span{}

// Start opens a child span of the one in ctx, from the same provider,
// with kv as string attributes (key, value, key, value...). Outside a
// trace (tracing off, or work no request started) it returns ctx and a
// no-op span without allocating.
func Start(ctx context.Context, name string, kv ...string) (context.Context, trace.Span) {
	return start(ctx, name, trace.SpanKindInternal, kv)
}

// StartClient is Start for a span of an outbound call (span kind client).
func StartClient(ctx context.Context, name string, kv ...string) (context.Context, trace.Span) {
	return start(ctx, name, trace.SpanKindClient, kv)
}

func start(ctx context.Context, name string, kind trace.SpanKind, kv []string) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, noopSpan
	}
	attrs := make([]attribute.KeyValue, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		attrs = append(attrs, attribute.String(kv[i], clip(kv[i+1], 256)))
	}
	return parent.TracerProvider().Tracer(scope).Start(ctx, name, trace.WithAttributes(attrs...), trace.WithSpanKind(kind))
}

// End records err (if any) on span and ends it.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, clip(err.Error(), 256))
	}
	span.End()
}

// Inject writes the trace context of ctx's span into h as traceparent
// (and tracestate); outside a trace it leaves h alone.
func Inject(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Env returns env with ctx's trace context added as TRACEPARENT (and
// TRACESTATE), the environment-carrier convention of OpenTelemetry, for a
// process started inside the span. Outside a trace it returns env as is;
// a name env already sets is left to the caller's value. env itself is
// never changed: the result is a copy when something is added.
func Env(ctx context.Context, env map[string]string) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return env
	}
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	out := make(map[string]string, len(env)+len(carrier))
	for k, v := range carrier {
		out[strings.ToUpper(k)] = v
	}
	maps.Copy(out, env)
	return out
}

// Detach returns a context that carries ctx's span (so spans started from
// it join ctx's trace) but neither ctx's deadline, cancellation nor other
// values: for work that outlives the request that started it.
func Detach(ctx context.Context) context.Context {
	return trace.ContextWithSpan(context.Background(), trace.SpanFromContext(ctx))
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
