package sandbox

import (
	"context"
	"io"

	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// Exec runs spec in sb (sb.Exec) inside a "sandbox.exec" span of ctx's
// trace; the API's exec route and env.sandbox call it.
func Exec(ctx context.Context, sb Sandbox, spec ExecSpec, stdout, stderr io.Writer) (int, error) {
	ctx, span := telemetry.Start(ctx, "sandbox.exec", "agentcloud.sandbox", sb.ID(), "process.executable.name", spec.Cmd)
	code, err := sb.Exec(ctx, spec, stdout, stderr)
	telemetry.End(span, err)
	return code, err
}
