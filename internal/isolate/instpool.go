package isolate

import (
	"time"

	"github.com/tetratelabs/wazero"
)

// Instance pool: a closed session's whole QuickJS instance, not only its
// reservation, waits in the pool (pool.go) for the next session of its
// template, so that restore skips instantiating the module. Instantiating
// was the largest step of a restore into a pooled reservation (~80 µs,
// most of it wazero filling QuickJS's 531-entry function table one
// element at a time), and a new instance's call stacks also had to grow
// again on the first request.
//
// What an instance holds besides its linear memory, and how a pooled one
// is made to read as a fresh restore:
//   - linear memory: reset to the template exactly as a pooled reservation
//     is (linearMemory.reset). Only an instance whose memory is exactly the
//     template's size is pooled: wasm memory cannot shrink, and a larger
//     one would tell the next session (memory.size) what the last one
//     grew to.
//   - mutable globals: QuickJS has one, __stack_pointer, which restore
//     sets from the snapshot's state; the instrumentation's stop flag is
//     lowered and its yield countdown set back to its initial value.
//     poolableGlobals checks at compile time that the module has no other
//     mutable global; without that check passing nothing is pooled.
//   - the function table: QuickJS's code never writes it (no table.set,
//     table.grow, table.fill, table.copy or table.init), so it is what
//     instantiation made (TestInstancePoolTableClass).
//   - wazero's call engines and the Go-side vm: stacks whose stale slots
//     the guest cannot read (wasm locals start at zero), bound exports.
//
// Only an instance closed healthy is pooled: not one left dead by a trap,
// a limit or a cancelled call, nor one whose module is closed.

// instPoolOff turns the instance pool off, keeping the reservation pool
// (benchmarks and tests compare the two).
var instPoolOff bool

// poolInstance resets v's memory to its template and pools the instance;
// false if it cannot (the caller closes the module as before). r and code
// are the runtime and module v was instantiated from.
func poolInstance(r *Runtime, code wazero.CompiledModule, v *vm) bool {
	m := v.lin
	if poolOff || instPoolOff || !r.instPoolable || m == nil || m.pf == nil || !m.mapped || m.inst != nil ||
		v.mod.IsClosed() || v.fired.Load() || v.after != nil {
		return false
	}
	f := m.pf
	if uint64(v.mem.Size()) != uint64(len(f.buf)) || m.size != uint64(len(f.buf)) || r.fill.isClosed() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || !m.reset(f.buf) {
		return false
	}
	if v.stop != nil {
		v.stop.Set(0)
	}
	if v.tick != nil {
		v.tick.Set(yieldEvery)
	}
	v.st = vmState{}
	m.reused, m.inst, m.instRT, m.instCode = true, v, r, code
	poolCounts.instPuts.Add(1)
	poolAdmit(m)
	return true
}

// instGet takes a pooled instance of code made by r, its memory reset to
// f's image with a limit of limit bytes, or nil.
func (r *Runtime) instGet(code wazero.CompiledModule, f *imageFile, limit uint64) *vm {
	if poolOff || instPoolOff || !r.instPoolable {
		return nil
	}
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	for k := len(resPool.free) - 1; k >= 0; k-- {
		m := resPool.free[k]
		if m.inst != nil && m.pf == f && m.limit == limit && m.instRT == r && m.instCode == code {
			resPool.free = append(resPool.free[:k], resPool.free[k+1:]...)
			v := m.inst
			m.inst, m.instRT, m.instCode = nil, nil, nil
			poolCounts.instHits.Add(1)
			return v
		}
	}
	return nil
}

// poolDropRuntime releases the pooled instances r made (Runtime.Close).
func poolDropRuntime(r *Runtime) {
	poolRelease(func(m *linearMemory) bool { return m.inst != nil && m.instRT == r })
}

// pooledInstances counts the pooled instances of code made by r for f
// with a limit of limit bytes.
func pooledInstances(r *Runtime, code wazero.CompiledModule, f *imageFile, limit uint64) int {
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	n := 0
	for _, m := range resPool.free {
		if m.inst != nil && m.pf == f && m.limit == limit && m.instRT == r && m.instCode == code {
			n++
		}
	}
	return n
}

// prefillEvictAge is how long the pool's oldest entry must have waited
// unused before a prefill may evict it (prefill.go): entries of templates
// no longer in use make room, but two templates in use do not take turns
// evicting each other's ready instances.
const prefillEvictAge = 30 * time.Second

// poolRoom reports whether the pool can take one more entry without
// evicting one that waited less than prefillEvictAge.
func poolRoom() bool {
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	return len(resPool.free) < poolTotal || time.Since(resPool.free[0].admitted) > prefillEvictAge
}

// instUnpool removes m (a pooled instance's memory) from the pool.
func instUnpool(m *linearMemory) {
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	for k, o := range resPool.free {
		if o == m {
			resPool.free = append(resPool.free[:k], resPool.free[k+1:]...)
			return
		}
	}
}

// poolableModule reports whether instances of the wasm binary code can be
// pooled whole: it imports no global, every mutable global it defines is
// one the pool resets (exported as __stack_pointer, the stop flag or the
// yield countdown), and no function writes a table.
func poolableModule(code []byte) bool {
	ws, err := parseSections(code)
	if err != nil {
		return false
	}
	if s := ws.find(2); s != nil {
		if _, globals, err := countImports(s.body); err != nil || globals != 0 {
			return false
		}
	}
	var mutable []uint32
	if s := ws.find(6); s != nil {
		r := &wasmReader{b: s.body}
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			r.byte() // valtype
			if r.byte() != 0 {
				mutable = append(mutable, i)
			}
			r.constExpr()
		}
		if r.err != nil || r.p != len(r.b) {
			return false
		}
	}
	reset := map[uint32]bool{}
	if s := ws.find(7); s != nil {
		r := &wasmReader{b: s.body}
		n := r.u32()
		for i := uint32(0); i < n && r.err == nil; i++ {
			name := string(r.bytes(int(r.u32())))
			kind, idx := r.byte(), r.u32()
			if kind == 0x03 && (name == "__stack_pointer" || name == stopGlobalName || name == tickGlobalName) {
				reset[idx] = true
			}
		}
		if r.err != nil {
			return false
		}
	}
	for _, g := range mutable {
		if !reset[g] {
			return false
		}
	}
	s := ws.find(10)
	if s == nil {
		return true
	}
	writes := false
	if _, err := instrumentCode(s.body, nil, -1, &writes); err != nil {
		return false
	}
	return !writes
}
