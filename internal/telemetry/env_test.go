package telemetry_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// TestEnvCarrierClass: Env adds TRACEPARENT and TRACESTATE for the span
// in the context and nothing outside a trace; the caller's own values win
// and its map is never changed. Detach keeps the span, not the deadline.
func TestEnvCarrierClass(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	state, _ := trace.ParseTraceState("k=v")
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8},
		TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true})
	ctx, span := tp.Tracer("t").Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "parent")
	defer span.End()
	sc := span.SpanContext()
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"

	for _, c := range []struct {
		name string
		ctx  context.Context
		env  map[string]string
		tp   string // TRACEPARENT wanted ("" absent)
		ts   string
	}{
		{"nil env under a span", ctx, nil, want, "k=v"},
		{"env under a span", ctx, map[string]string{"A": "1"}, want, "k=v"},
		{"caller's values win", ctx, map[string]string{"TRACEPARENT": "mine", "TRACESTATE": "x=y"}, "mine", "x=y"},
		{"no span", context.Background(), map[string]string{"A": "1"}, "", ""},
		{"remote context only", trace.ContextWithRemoteSpanContext(context.Background(), remote), nil,
			"00-" + remote.TraceID().String() + "-" + remote.SpanID().String() + "-01", "k=v"},
	} {
		before := len(c.env)
		got := telemetry.Env(c.ctx, c.env)
		if got["TRACEPARENT"] != c.tp || got["TRACESTATE"] != c.ts {
			t.Errorf("%s: TRACEPARENT %q TRACESTATE %q, want %q %q", c.name, got["TRACEPARENT"], got["TRACESTATE"], c.tp, c.ts)
		}
		if len(c.env) != before {
			t.Errorf("%s: the caller's map changed: %v", c.name, c.env)
		}
		if c.env != nil && got["A"] != c.env["A"] {
			t.Errorf("%s: lost the caller's variables: %v", c.name, got)
		}
	}

	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	cancel()
	d := telemetry.Detach(dctx)
	if d.Err() != nil {
		t.Errorf("Detach kept the cancellation: %v", d.Err())
	}
	if _, ok := d.Deadline(); ok {
		t.Error("Detach kept the deadline")
	}
	if !trace.SpanContextFromContext(d).Equal(sc) {
		t.Error("Detach lost the span")
	}
	if telemetry.Env(telemetry.Detach(context.Background()), nil) != nil {
		t.Error("Detach of a context without a span made one")
	}
}
