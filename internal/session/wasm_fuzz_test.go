package session

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
)

// FuzzWasmModule feeds arbitrary bytes to the deploy-time check of a
// runtime "wasm" entry (magic, instrumentation, compilation, _initialize):
// it must answer a validation problem or accept, never panic or hang.
func FuzzWasmModule(f *testing.F) {
	if b, err := os.ReadFile("../../examples/wasm-counter/agent.wasm"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x01\x07\x0a\x01\x06memory\x02\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("export default {}"))
	m := openManager(f, f.TempDir())
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"fz","entry":"agent.wasm","runtime":"wasm","limits":{"memory_mib":4,"cpu_ms":200,"wall_ms":200}}`),
		"agent.wasm": []byte("\x00asm\x01\x00\x00\x00")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, module []byte) {
		b.Files["agent.wasm"] = module
		v, err := m.newVersion(versionRecord{Agent: "fz", Manifest: b.Manifest}, b)
		if err != nil {
			if !api.IsKind(err, api.KindValidation) {
				t.Fatalf("newVersion: %v", err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Running past the module's own 200 ms wall limit is an answer (a
		// loaded machine compiles slowly); only the outer deadline is a hang.
		err = v.check(ctx, m)
		var limit *initLimitError
		if ctx.Err() != nil || (errors.Is(err, context.DeadlineExceeded) && !errors.As(err, &limit)) {
			t.Fatalf("check hung: %v", err)
		}
	})
}
