package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// instance is a live session's running agent code: a JavaScript isolate
// (runtime "js") or a raw WASI module (runtime "wasm", the host ABI in
// internal/isolate/ABI.md). The session layer treats both alike.
type instance interface {
	Fetch(ctx context.Context, req isolate.Request, h isolate.Host) (isolate.Response, error)
	Alarm(ctx context.Context, h isolate.Host) error
	// Snapshot captures the heap for hibernation.
	Snapshot() ([]byte, error)
	// Trim gives back memory an idle instance can do without.
	Trim() error
	MemoryBytes() int
	Err() error
	Close(ctx context.Context) error
}

// jsInstance snapshots as a delta against its version's template.
type jsInstance struct {
	*isolate.Isolate
	tmpl *isolate.Template
}

func (j jsInstance) Snapshot() ([]byte, error) { return j.Isolate.Snapshot(j.tmpl) }

// wasmInstance is a raw wasm module. Its memory is the module's own data
// and heap, with nothing shared to give back, so Trim has nothing to do.
type wasmInstance struct{ *isolate.WasmIsolate }

func (wasmInstance) Trim() error { return nil }

// isWasm reports whether v runs a raw wasm module.
func (v *version) isWasm() bool { return v.wasm != nil }

// check makes sure v's code starts: for JS it builds (or loads) the
// template, for wasm it compiles the module and runs its _initialize once.
// Both run under the init limits (initLimited).
func (v *version) check(ctx context.Context, m *Manager) error {
	if !v.isWasm() {
		_, err := v.template(ctx, m)
		return err
	}
	if err := v.tmu.lock(ctx); err != nil {
		return err
	}
	defer v.tmu.unlock()
	if v.checked {
		return nil
	}
	w, err := initLimited(ctx, m, v, func(ictx context.Context) (*isolate.WasmIsolate, error) {
		return m.cfg.Runtime.NewWasm(ictx, *v.wasm)
	})
	if err != nil {
		return err
	}
	_ = w.Close(ctx)
	v.checked = true
	return nil
}

// start creates the session's instance from snap, or fresh when snap is nil
// or unusable (a bad snapshot is logged and the session starts over). The
// activation runs under the init limits: a wasm session runs its module's
// _initialize, and a JS restore runs the prelude's configure, which agent
// code can reach (a setter it defined on env). Getting a JS version's
// template comes first and outside them: loading it from the store waits on
// storage, which in a cluster can take a leader election, and building it
// has limits of its own (template).
func (m *Manager) start(ctx context.Context, v *version, k sessKey, snap []byte) (instance, error) {
	var tmpl *isolate.Template
	if !v.isWasm() {
		var err error
		if tmpl, err = v.template(ctx, m); err != nil {
			return nil, startProblem(k, err)
		}
	}
	inst, err := initLimited(ctx, m, v, func(ictx context.Context) (instance, error) {
		return m.startIn(ictx, v, k, snap, tmpl)
	})
	if err != nil {
		return nil, startProblem(k, err)
	}
	return inst, nil
}

// startProblem is the error a failed start returns: a problem as it is, a
// fault of the store as one (storeUnavailable), anything else the agent's code
// caused (activationProblem).
func startProblem(k sessKey, err error) error {
	var p *api.Problem
	var ts *templateStoreError
	switch {
	case errors.As(err, &p):
		return err
	case errors.As(err, &ts):
		return storeUnavailable(err)
	}
	return activationProblem(k, err)
}

// startIn is start without the limits; tmpl is a JS version's template.
func (m *Manager) startIn(ctx context.Context, v *version, k sessKey, snap []byte, tmpl *isolate.Template) (instance, error) {
	if v.isWasm() {
		spec := *v.wasm
		spec.SessionID = k.id
		if snap != nil {
			w, err := m.cfg.Runtime.RestoreWasm(ctx, spec, snap)
			if err == nil {
				return wasmInstance{w}, nil
			}
			m.log.Warn("snapshot unusable; starting the module afresh", "agent", k.agent, "session", k.id, "err", err)
		}
		w, err := m.cfg.Runtime.NewWasm(ctx, spec)
		if err != nil {
			return nil, err
		}
		return wasmInstance{w}, nil
	}
	spec := v.spec
	spec.SessionID = k.id
	iso, err := m.cfg.Runtime.Restore(ctx, spec, snap, tmpl)
	if err != nil && snap != nil && ctx.Err() == nil {
		m.log.Warn("snapshot unusable; starting from the template", "agent", k.agent, "session", k.id, "err", err)
		iso, err = m.cfg.Runtime.Restore(ctx, spec, nil, tmpl)
	}
	if err != nil {
		return nil, err
	}
	return jsInstance{iso, tmpl}, nil
}

// memoryMiB is the version's memory limit, for error messages.
func (v *version) memoryMiB() int {
	if v.isWasm() {
		return v.wasm.MemoryMiB
	}
	return v.spec.MemoryMiB
}

var errNotWasm = errors.New("not a wasm module")

// checkWasmMagic rejects an entry that is not a wasm binary before any
// compilation, with a message that names the fix.
func checkWasmMagic(b []byte) error {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return fmt.Errorf("%w: the entry file does not start with the wasm magic bytes (build it for wasm32-wasi, e.g. clang --target=wasm32-wasi -mexec-model=reactor)", errNotWasm)
	}
	return nil
}
