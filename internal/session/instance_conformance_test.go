package session

import (
	"context"
	"testing"

	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/isolate/isolatetest"
)

// The session layer's instance is the suite's Instance.
var _ isolatetest.Instance = instance(nil)

// TestInstanceConformance runs the one instance suite against both kinds
// of session instance, each running the counter agent.
func TestInstanceConformance(t *testing.T) {
	t.Run("js", func(t *testing.T) {
		spec := isolate.Spec{SessionID: "s1", Agent: "counter", Module: isolatetest.CounterJS}
		tmpl, err := testRuntime.Template(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		start := func(ctx context.Context, snap []byte) (isolatetest.Instance, error) {
			iso, err := testRuntime.Restore(ctx, spec, snap, tmpl)
			if err != nil {
				return nil, err
			}
			return jsInstance{iso, tmpl}, nil
		}
		isolatetest.InstanceConformance(t, isolatetest.Impl{
			New: func(ctx context.Context, _ *testing.T) (isolatetest.Instance, error) { return start(ctx, nil) },
			Restore: func(ctx context.Context, _ *testing.T, snap []byte) (isolatetest.Instance, error) {
				return start(ctx, snap)
			},
		})
	})
	t.Run("wasm", func(t *testing.T) {
		spec := isolate.WasmSpec{SessionID: "s1", Agent: "counter", Module: isolatetest.CounterWasm(t)}
		isolatetest.InstanceConformance(t, isolatetest.Impl{
			New: func(ctx context.Context, _ *testing.T) (isolatetest.Instance, error) {
				w, err := testRuntime.NewWasm(ctx, spec)
				if err != nil {
					return nil, err
				}
				return wasmInstance{w}, nil
			},
			Restore: func(ctx context.Context, _ *testing.T, snap []byte) (isolatetest.Instance, error) {
				w, err := testRuntime.RestoreWasm(ctx, spec, snap)
				if err != nil {
					return nil, err
				}
				return wasmInstance{w}, nil
			},
		})
	})
}
