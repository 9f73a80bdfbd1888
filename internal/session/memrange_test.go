package session

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// TestManifestMemoryRangeClass checks that limits.memory_mib validates
// exactly where the engine runs: the manifest's bounds are the isolate's,
// every value at a bound deploys and serves a request that uses its heap,
// and every value past one fails validation on field limits.memory_mib,
// for JavaScript and raw wasm agents.
func TestManifestMemoryRangeClass(t *testing.T) {
	if bundle.MinMemoryMiBJS != isolate.MinMemoryMiB || bundle.MinMemoryMiBWasm != isolate.MinWasmMemoryMiB ||
		bundle.MaxMemoryMiB != isolate.DefaultMaxMemoryMiB {
		t.Fatalf("manifest memory range js [%d, %d] wasm [%d, %d]; engine js [%d, %d] wasm [%d, %d]",
			bundle.MinMemoryMiBJS, bundle.MaxMemoryMiB, bundle.MinMemoryMiBWasm, bundle.MaxMemoryMiB,
			isolate.MinMemoryMiB, isolate.DefaultMaxMemoryMiB, isolate.MinWasmMemoryMiB, isolate.DefaultMaxMemoryMiB)
	}
	m := openManager(t, t.TempDir())
	wasm := assembleWAT(t, initWAT(1, ""))
	for _, rt := range []bundle.Runtime{bundle.RuntimeJS, bundle.RuntimeWASM} {
		lo, hi := bundle.MemoryRange(rt)
		for _, mib := range []int{lo - 1, lo, lo + 1, hi - 1, hi, hi + 1} {
			name := fmt.Sprintf("mem-%s-%d", rt, mib)
			if mib < 0 {
				name = fmt.Sprintf("mem-%s-neg", rt)
			}
			man := fmt.Sprintf(`{"name":%q,"entry":"agent.js","limits":{"memory_mib":%d}}`, name, mib)
			files := map[string][]byte{"agent.json": []byte(man),
				// A request allocates a MiB of its heap (at the bounds).
				"agent.js": []byte(`export default { fetch() { const b = new ArrayBuffer(1 << 20); new Uint8Array(b)[b.byteLength - 1] = 1; return new Response("ok") } }`)}
			if rt == bundle.RuntimeWASM {
				man = fmt.Sprintf(`{"name":%q,"entry":"agent.wasm","runtime":"wasm","limits":{"memory_mib":%d}}`, name, mib)
				files = map[string][]byte{"agent.json": []byte(man), "agent.wasm": wasm}
			}
			b, err := bundle.FromFiles(files)
			if mib < lo || mib > hi {
				var me *bundle.ManifestError
				if !errors.As(err, &me) || len(me.Problems) != 1 || me.Problems[0].Field != "limits.memory_mib" {
					t.Errorf("%s memory_mib %d: %v, want one validation problem on limits.memory_mib", rt, mib, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s memory_mib %d does not validate: %v", rt, mib, err)
				continue
			}
			if _, err := m.Deploy(context.Background(), Principal{}, b); err != nil {
				t.Errorf("%s memory_mib %d validates but does not deploy: %v", rt, mib, err)
				continue
			}
			if body := mustCall(t, m, name, "s", "/"); body != "ok" {
				t.Errorf("%s memory_mib %d: %q", rt, mib, body)
			}
		}
	}
}
