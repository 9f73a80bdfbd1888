package isolate

import (
	"context"
	"time"
)

// RestorePhases are the durations of one restore's steps, filled in when
// the restore's context carries them (WithRestorePhases); benchmarks use
// them to say where an activation's time goes. A restore without them
// reads no clock for them.
type RestorePhases struct {
	Decode      time.Duration // zstd and the snapshot's parse
	Instantiate time.Duration // the engine's module instance (wazero)
	Map         time.Duration // grow, and map (or copy) the template
	Hot         time.Duration // make the template's learned hot pages private
	Zero        time.Duration // drop what lies past the template
	Apply       time.Duration // write the snapshot's byte runs
	State       time.Duration // restoreState: the first guest call
	Configure   time.Duration // limits and the session's configuration (guest calls)
	ApplyRuns   int           // the snapshot's byte runs
	ApplyBytes  int           // and their bytes
}

type phasesKey struct{}

// WithRestorePhases returns ctx carrying p: a Restore under it records its
// steps' durations into p.
func WithRestorePhases(ctx context.Context, p *RestorePhases) context.Context {
	return context.WithValue(ctx, phasesKey{}, p)
}

func restorePhases(ctx context.Context) *RestorePhases {
	p, _ := ctx.Value(phasesKey{}).(*RestorePhases)
	return p
}

// lap adds the time since *t to *d and moves *t to now.
func (p *RestorePhases) lap(d *time.Duration, t *time.Time) {
	now := time.Now()
	*d += now.Sub(*t)
	*t = now
}
