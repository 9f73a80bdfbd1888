package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/agentcloud/agentcloud/internal/config"
)

// Log keys added to lines written inside a span.
const (
	keyTraceID = "trace_id"
	keySpanID  = "span_id"
)

// Logger returns log adding trace_id and span_id to every record logged
// with a context that carries a span. Tracing off (no endpoint in cfg)
// returns log itself, so lines cost nothing more.
func Logger(cfg config.TracingConfig, log *slog.Logger) *slog.Logger {
	if cfg.OTLPEndpoint == "" || log == nil {
		return log
	}
	return slog.New(logHandler{log.Handler()})
}

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String(keyTraceID, sc.TraceID().String()), slog.String(keySpanID, sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
