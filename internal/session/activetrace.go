package session

import (
	"context"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// activationTrace is where one activation's time went, filled in when the
// activation's context carries it (withActivationTrace; the benchmarks'
// breakdown). Without one, activate reads no extra clock.
type activationTrace struct {
	Record   time.Duration // agent and session records, recovery, version
	Snapshot time.Duration // the hibernated heap's store read
	Start    time.Duration // the isolate's restore, in all
	Identity time.Duration // the session's identity
	Restore  isolate.RestorePhases
}

type traceKey struct{}

func withActivationTrace(ctx context.Context, tr *activationTrace) context.Context {
	return context.WithValue(ctx, traceKey{}, tr)
}

func activationTraceOf(ctx context.Context) *activationTrace {
	tr, _ := ctx.Value(traceKey{}).(*activationTrace)
	return tr
}

// lap adds the time since t to *d and returns now.
func (tr *activationTrace) lap(d *time.Duration, t time.Time) time.Time {
	now := time.Now()
	*d += now.Sub(t)
	return now
}
