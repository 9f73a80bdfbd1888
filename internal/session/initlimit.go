package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// DefaultInitTimeout is Config.InitTimeout's default.
const DefaultInitTimeout = 10 * time.Second

// initLimitError is the cause recorded when agent initialisation runs past
// its limit; it names the limit.
type initLimitError struct {
	field string // "limits.wall_ms", or "" for the platform's cap
	limit time.Duration
}

func (e *initLimitError) Error() string {
	if e.field == "" {
		return fmt.Sprintf("agent initialisation ran past the node's agent_init_timeout of %v", e.limit)
	}
	return fmt.Sprintf("agent initialisation ran past %s (%d ms)", e.field, e.limit.Milliseconds())
}

// initLimit is how long v's initialisation may run: its manifest's wall
// time, capped by the node's InitTimeout. Initialisation makes no host
// calls, so all of it is CPU; cpu_ms is not used because it budgets one
// request's handler, while initialisation also pays for the engine's boot
// and the module's compilation.
func (m *Manager) initLimit(v *version) *initLimitError {
	limit := &initLimitError{limit: m.cfg.InitTimeout}
	if v.wall > 0 && v.wall < limit.limit {
		limit.field, limit.limit = "limits.wall_ms", v.wall
	}
	return limit
}

// initLimited runs f, which initialises agent code (a template build, a
// wasm module's _initialize, an activation), under v's init limit. A run
// past the limit returns an error wrapping isolate.ErrTimeout and the
// *initLimitError naming the limit.
func initLimited[T any](ctx context.Context, m *Manager, v *version, f func(context.Context) (T, error)) (T, error) {
	limit := m.initLimit(v)
	ictx, cancel := context.WithTimeoutCause(ctx, limit.limit, limit)
	defer cancel()
	out, err := f(ictx)
	if err != nil && errors.Is(context.Cause(ictx), limit) && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", limit, err)
	}
	return out, err
}

// deployInitProblem turns a failed initialisation at deploy into a 4xx
// problem naming the field to change; a template the store could not
// return or keep is the store's fault (storeUnavailable), not the code's.
func deployInitProblem(v *version, err error) error {
	var p *api.Problem
	if errors.As(err, &p) {
		return err
	}
	var ts *templateStoreError
	if errors.As(err, &ts) {
		return storeUnavailable(err)
	}
	var limit *initLimitError
	switch {
	case errors.As(err, &limit):
		fix := "raise limits.wall_ms or do less at module top level (move work into fetch)"
		if limit.field == "" {
			fix = "do less at module top level (move work into fetch); the node's agent_init_timeout bounds every agent"
		}
		pr := api.Errorf(api.KindAgentInitTimeout, "%v: %s; the previous version stays current", limit, fix)
		pr.Field = limit.field
		return pr
	case errors.Is(err, isolate.ErrMemoryRange):
		return api.FieldErrorf(api.KindValidation, "limits.memory_mib", "limits.memory_mib %d cannot run this agent: %v", v.memoryMiB(), err)
	case errors.Is(err, isolate.ErrMemoryExceeded):
		return api.FieldErrorf(api.KindValidation, "limits.memory_mib",
			"agent initialisation ran out of memory within limits.memory_mib %d MiB: raise it or allocate less at module top level (%v)", v.memoryMiB(), err)
	case v.isWasm():
		return api.FieldErrorf(api.KindValidation, "entry",
			"wasm module %q does not load: %v (see the host ABI in internal/isolate/ABI.md)", v.rec.Manifest.Entry, err)
	}
	return api.Errorf(api.KindValidation, "agent code failed to initialise: %v", err)
}

// activationProblem turns a failed activation into a problem.
func activationProblem(k sessKey, err error) error {
	var limit *initLimitError
	switch {
	case errors.As(err, &limit):
		return api.Errorf(api.KindSessionTimeout, "start session %s/%s: %v", k.agent, k.id, limit)
	case errors.Is(err, isolate.ErrMemoryExceeded), errors.Is(err, isolate.ErrMemoryRange):
		return api.Errorf(api.KindSessionMemoryExceeded, "start session %s/%s: %v", k.agent, k.id, err)
	}
	return api.Errorf(api.KindSessionCrashed, "start session %s/%s: %v", k.agent, k.id, err)
}
