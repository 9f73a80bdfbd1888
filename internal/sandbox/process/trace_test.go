//go:build linux

package process

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestTraceContextIntoProcessesClass: a command run by sandbox.Exec under
// a span finds the sandbox.exec span's trace context in TRACEPARENT (and
// the trace's TRACESTATE) in its environment, in a real process-tier
// sandbox; outside a trace nothing is added, a value the caller set is
// kept, and the caller's env map is not changed.
func TestTraceContextIntoProcessesClass(t *testing.T) {
	tier := newTestTier(t)
	sb, err := sandbox.Create(t.Context(), tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	state, err := trace.ParseTraceState("vendor=abc,other=x1")
	if err != nil {
		t.Fatal(err)
	}
	remote := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true})
	traced, span := tp.Tracer("test").Start(trace.ContextWithRemoteSpanContext(context.Background(), remote), "request")
	defer span.End()

	exec := func(ctx context.Context, env map[string]string) (string, string) {
		t.Helper()
		var out bytes.Buffer
		code, err := sandbox.Exec(ctx, sb, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", `printf '%s|%s|%s' "$TRACEPARENT" "$TRACESTATE" "$OTHER"`}, Env: env}, &out, nil)
		if err != nil || code != 0 {
			t.Fatalf("exec: %d %v", code, err)
		}
		f := strings.Split(out.String(), "|")
		if len(f) != 3 {
			t.Fatalf("output %q", out.String())
		}
		return f[0] + "|" + f[1], f[2]
	}
	execSpan := func() trace.SpanContext {
		t.Helper()
		ended := rec.Ended()
		if len(ended) == 0 || ended[len(ended)-1].Name() != "sandbox.exec" {
			t.Fatalf("no sandbox.exec span ended: %d spans", len(ended))
		}
		return ended[len(ended)-1].SpanContext()
	}

	t.Run("UnderASpan", func(t *testing.T) {
		env := map[string]string{"OTHER": "kept"}
		got, other := exec(traced, env)
		sc := execSpan()
		want := fmt.Sprintf("00-%s-%s-01|vendor=abc,other=x1", sc.TraceID(), sc.SpanID())
		if got != want || other != "kept" {
			t.Errorf("TRACEPARENT|TRACESTATE = %q (OTHER %q), want %q", got, other, want)
		}
		if sc.TraceID() != remote.TraceID() || sc.SpanID() == span.SpanContext().SpanID() {
			t.Errorf("sandbox.exec span %v is not a child in the request's trace %v", sc, remote)
		}
		if len(env) != 1 {
			t.Errorf("the caller's env map changed: %v", env)
		}
	})
	t.Run("NoSpan", func(t *testing.T) {
		n := len(rec.Ended())
		if got, other := exec(context.Background(), map[string]string{"OTHER": "kept"}); got != "|" || other != "kept" {
			t.Errorf("outside a trace: TRACEPARENT|TRACESTATE = %q (OTHER %q), want empty", got, other)
		}
		if len(rec.Ended()) != n {
			t.Error("a span was recorded outside a trace")
		}
	})
	t.Run("CallerValueKept", func(t *testing.T) {
		mine := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		if got, _ := exec(traced, map[string]string{"TRACEPARENT": mine}); !strings.HasPrefix(got, mine+"|") {
			t.Errorf("TRACEPARENT the caller set became %q", got)
		}
	})
}
