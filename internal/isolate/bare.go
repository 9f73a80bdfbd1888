package isolate

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
)

// Restores instantiate a QuickJS module without its data segments. wazero
// writes a module's data segments (115 KB for QuickJS) into every new
// instance's memory, but a restore replaces all of that memory at once
// (the template's mapping, or zeros and a full snapshot), so the copy, its
// page faults and the unmapping of the pages it dirtied are wasted on the
// path every activation takes. Only a fresh boot (New, Template) needs the
// data. The bare module is compiled in the background on the first
// restore, so runtimes that never restore never pay for it, and restores
// use the full module until it is ready. A binary whose code refers to its
// data segments (memory.init, data.drop) fails to compile bare and keeps
// the full module.

// bareModule is the data-less QuickJS module of a Runtime.
type bareModule struct {
	once sync.Once
	wg   sync.WaitGroup
	mod  atomic.Pointer[wazero.CompiledModule]
}

// restoreModule is the module restores instantiate: the bare one once it
// is compiled, else the full one (starting the bare compile).
func (r *Runtime) restoreModule() wazero.CompiledModule {
	if m := r.bare.mod.Load(); m != nil {
		return *m
	}
	r.bare.once.Do(func() {
		code, ok := withoutData(r.code)
		if !ok {
			return
		}
		r.bare.wg.Go(func() {
			m, err := r.wr.CompileModule(context.Background(), code)
			if err != nil {
				r.log.Debug("isolate: QuickJS without data segments does not compile; restores keep the full module", "err", err)
				return
			}
			r.bare.mod.Store(&m)
		})
	})
	return r.qjs
}

// PrepareRestores compiles the module restores instantiate (the first
// restore otherwise starts that compile in the background) and waits for
// it. Restores work without it; benchmarks call it to keep the compile out
// of their figures.
func (r *Runtime) PrepareRestores() {
	r.restoreModule()
	r.bare.wg.Wait()
}

// withoutData returns the wasm binary code with an empty data section and
// a data count of zero; false if it has no data section or does not parse.
func withoutData(code []byte) ([]byte, bool) {
	if len(code) < 8 {
		return nil, false
	}
	out := append([]byte(nil), code[:8]...)
	found := false
	for p := 8; p < len(code); {
		id := code[p]
		n, k := binary.Uvarint(code[p+1:])
		if k <= 0 || uint64(len(code)-p-1-k) < n {
			return nil, false
		}
		body := code[p+1+k : p+1+k+int(n)]
		p += 1 + k + int(n)
		if id == 11 || id == 12 { // data, data count: no segments
			found = found || id == 11
			body = []byte{0}
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out, found
}
