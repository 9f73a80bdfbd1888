package sandbox

import (
	"context"
	"io"

	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// Exec runs spec in sb (sb.Exec) inside a "sandbox.exec" span of ctx's
// trace, with the span's trace context in the command's environment as
// TRACEPARENT and TRACESTATE (telemetry.Env), so a traced program inside
// joins the trace; the API's exec route, env.sandbox and the E2B process
// API call it.
func Exec(ctx context.Context, sb Sandbox, spec ExecSpec, stdout, stderr io.Writer) (int, error) {
	ctx, span := telemetry.Start(ctx, "sandbox.exec", "agentcloud.sandbox", sb.ID(), "process.executable.name", spec.Cmd)
	spec.Env = telemetry.Env(ctx, spec.Env)
	code, err := sb.Exec(ctx, spec, stdout, stderr)
	telemetry.End(span, err)
	return code, err
}
