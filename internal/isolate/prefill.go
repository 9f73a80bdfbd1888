package isolate

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
)

// Prefill: instances made ahead of need. A restore that finds a pooled
// instance of its template (instpool.go) skips instantiating and, more
// importantly on a VM with shadow paging, lands in a reservation whose
// pages the host has seen: a session's activation then costs ~0.5 ms
// instead of ~1.5–2 ms, most of the difference being first touches of a
// fresh mapping (docs/PERFORMANCE.md, "Activation phases"). The pool only
// fills when sessions close, so a node whose activated sessions stay live
// (the usual case: a session is activated because traffic reached it)
// missed it on every activation.
//
// With Config.Prefill > 0, a restore of a template with an image file
// in demand (another restore of it ran within prefillDemandWindow) that
// leaves fewer than Prefill pooled instances of it starts a background
// filler for that template, unless one runs already (one per runtime:
// the fillers' CPU is at most one core). The filler instantiates the
// module, maps the template over the new reservation, makes its learned
// hot pages private and pools the instance as a closed session's would be
// pooled (poolInstance: the reset writes the template's bytes over every
// private page from user space, which is what makes the host fill its page
// tables). A prefilled instance holds nothing of any session: it is the
// template, so the isolation argument of pool.go holds unchanged.
//
// The filler stops at Prefill instances, when the pool is full (poolTotal)
// of entries that waited less than prefillEvictAge (so templates in use do
// not evict each other's ready instances, while those of templates no
// longer in use make room), when a prefill fails, and when the runtime
// closes (Close waits for it). A template whose prefilled instance the pool
// refused (its hot set is larger than a pooled reservation may hold, or
// /proc/self/pagemap cannot be read) is never prefilled again, so a
// refusal costs one wasted instance, not one per restore. Its work is
// what the restores would have done themselves; it moves off the request's
// path, not away.

// DefaultPrefill is the number of ready instances per template the daemon
// asks for: enough for a few activations arriving together, each costing
// the hot pages' RSS (~400 KiB for a small agent) while it waits.
const DefaultPrefill = 4

// prefillDemandWindow: a template is prefilled only when it was restored
// twice within this long. One restored less often gets nothing from ready
// instances (they would wait, holding RAM, and be evicted by templates in
// use, prefillEvictAge) and so gets none.
const prefillDemandWindow = 10 * time.Second

// prefiller tracks the runtime's filler (one at a time).
type prefiller struct {
	mu      sync.Mutex
	closed  bool
	running bool
	wg      sync.WaitGroup
}

// prefillAfter starts a filler for b's image when fewer than
// r.cfg.Prefill instances of it (for code, with mib MiB) are pooled.
func (r *Runtime) prefillAfter(code wazero.CompiledModule, b *Template, mib int) {
	n := r.cfg.Prefill
	if n <= 0 || b == nil || b.file == nil || poolOff || instPoolOff || !r.instPoolable {
		return
	}
	now := time.Now().UnixNano()
	if prev := b.file.lastRestore.Swap(now); prev == 0 || time.Duration(now-prev) > prefillDemandWindow {
		return
	}
	if b.file.noPrefill.Load() || pagemap() == nil {
		return
	}
	limit := uint64(mib) << 20
	if pooledInstances(r, code, b.file, limit) >= n {
		return
	}
	p := &r.fill
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.running {
		return
	}
	p.running = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		r.prefillRun(code, b, mib, n)
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
	}()
}

// prefillRun pools instances of b until want are pooled or it cannot.
func (r *Runtime) prefillRun(code wazero.CompiledModule, b *Template, mib, want int) {
	limit := uint64(mib) << 20
	for range want {
		if r.fill.isClosed() || pooledInstances(r, code, b.file, limit) >= want || !poolRoom() {
			return
		}
		if !r.prefillOne(code, b, mib) {
			return
		}
		runtime.Gosched()
	}
}

// prefillOne makes one instance of code for b, as a restore of b would
// before its snapshot is applied, and pools it; false if it could not.
func (r *Runtime) prefillOne(code wazero.CompiledModule, b *Template, mib int) bool {
	ctx := context.Background()
	iso, err := r.instantiate(ctx, Spec{MemoryMiB: mib}, code, b.file)
	if err != nil {
		r.log.Debug("prefill: instantiate", "err", err)
		return false
	}
	// Yield between the steps: Go preempts a running goroutine only
	// after 10 ms, and a request waiting for this filler's P would wait
	// for the whole prefill.
	runtime.Gosched()
	v := iso.vm
	ok := v.lin != nil && r.prefillMap(v, b)
	runtime.Gosched()
	if ok {
		ok = poolInstance(r, code, v)
	}
	if !ok {
		b.file.noPrefill.Store(true)
		_ = v.mod.Close(ctx)
		return false
	}
	poolCounts.prefills.Add(1)
	return true
}

// prefillMap grows v's memory to b's image, maps the image over it and
// makes b's hot pages private, as load does for a fresh reservation.
func (r *Runtime) prefillMap(v *vm, b *Template) bool {
	need := uint32(len(b.image))
	if cur := v.mem.Size(); need > cur {
		if _, ok := v.mem.Grow((need - cur) / wasmPage); !ok {
			return false
		}
	}
	if v.mem.Size() != need || v.lin.mapImage(b.file) != nil {
		return false
	}
	v.lin.populateHot(b)
	return true
}

// isClosed reports whether the runtime is closing (closeFill ran).
func (p *prefiller) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// closeFill stops new fillers and waits for the running ones.
func (p *prefiller) closeFill() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}
