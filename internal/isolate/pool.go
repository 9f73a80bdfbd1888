package isolate

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Reservation pool: a closed session's linear memory, restored from a
// template, is reset to that template and kept for the next session of the
// template, instead of being unmapped.
//
// Why: the first touch of each page of a freshly mapped reservation is
// expensive on a VM with shadow paging (as the PVM guests this runs on
// have): the hypervisor fills its copy of the page table entry on that
// first access, several µs per page, invisible to the guest as a page
// fault and charged to the guest code that touched the page. A session's
// first call into JavaScript touches ~60 pages and its first request ~80
// more, which was the "first call" cost of docs/PERFORMANCE.md. A reused
// reservation keeps its page table entries, and with them the host's.
//
// Reset keeps every page table entry it can: a page the session made
// private inside the template's range is overwritten with the template's
// bytes (it stays a private page, now equal to the template, so the next
// session writes it without a copy-on-write fault); a private page past the
// template's end is dropped (reads as zero again). Pages that are not
// private still map the template's sealed file (or the zero page) and need
// nothing. Which pages are private comes from /proc/self/pagemap; without
// it nothing is pooled. After a reset the whole reservation reads exactly
// as a fresh mapping of the template would, so no byte of one session can
// reach the next (TestPoolIsolationClass).

// Pool bounds: reservations kept per template and in all, and the most
// private pages inside the template's range a kept reservation may hold
// (each holds the pages its sessions dirtied there: ~100, 400 KiB, for a
// small agent; one that dirtied more is unmapped instead). 16 per
// template: a node creating sessions with 16 requests in flight (bench
// sessions' default) closes up to 16 at once, and with 8 kept every tenth
// restore missed the pool (BenchmarkCreateSession: 89–93% hits with 8,
// 99% with 16), each miss costing ~0.7 ms more.
const (
	poolPerTemplate = 16
	poolTotal       = 32
	poolMaxPrivate  = 1024
)

// poolOff turns the pool off (benchmarks compare the two).
var poolOff bool

// resPool is the process's pool of reset reservations, oldest first.
var resPool struct {
	mu   sync.Mutex
	free []*linearMemory
}

// poolCounts counts restores that looked in the pool and found a
// reservation (hits) or none (misses), and reservations that went back to
// it (puts) or were unmapped instead (drops: the reset refused, or the
// pool was full). See PoolStats.
var poolCounts struct {
	hits, misses, puts, drops atomic.Uint64
	// instHits and instPuts count whole instances taken from and put in
	// the pool (instpool.go): a restore that took one did not instantiate,
	// so it is in neither hits nor misses.
	instHits, instPuts atomic.Uint64
	// prefills counts instances pooled ahead of need (prefill.go); they
	// are in instPuts too.
	prefills atomic.Uint64
}

// PoolStats are the reservation pool's counters since the process started.
// Hits and Misses include the prefill's own lookups (prefill.go).
type PoolStats struct {
	Hits, Misses, Puts, Drops  uint64
	InstanceHits, InstancePuts uint64
	Prefills                   uint64
}

// ReadPoolStats returns the reservation pool's counters (benchmarks report
// the hit ratio).
func ReadPoolStats() PoolStats {
	return PoolStats{Hits: poolCounts.hits.Load(), Misses: poolCounts.misses.Load(),
		Puts: poolCounts.puts.Load(), Drops: poolCounts.drops.Load(),
		InstanceHits: poolCounts.instHits.Load(), InstancePuts: poolCounts.instPuts.Load(),
		Prefills: poolCounts.prefills.Load()}
}

// poolGet takes a reservation of limit bytes reset to f, or nil. A
// pooled instance's reservation is not one: it belongs to that instance
// (instGet).
func poolGet(f *imageFile, limit uint64) *linearMemory {
	if poolOff {
		return nil
	}
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	for k := len(resPool.free) - 1; k >= 0; k-- {
		m := resPool.free[k]
		if m.pf == f && m.limit == limit && m.inst == nil {
			resPool.free = append(resPool.free[:k], resPool.free[k+1:]...)
			poolCounts.hits.Add(1)
			return m
		}
	}
	poolCounts.misses.Add(1)
	return nil
}

// poolPut resets m (mapped from m.pf over [0, len(m.pf.buf))) to that
// image and keeps its reservation; false if it cannot (the caller then
// unmaps it). On true m no longer owns the reservation.
func poolPut(m *linearMemory) bool {
	f := m.pf
	f.mu.Lock()
	defer f.mu.Unlock()
	if poolOff || f.closed || !m.reset(f.buf) {
		poolCounts.drops.Add(1)
		return false
	}
	poolCounts.puts.Add(1)
	poolAdmit(&linearMemory{buf: m.buf, limit: m.limit, pf: f, noFaultAround: m.noFaultAround})
	return true
}

// poolAdmit adds a reset entry to the pool, evicting the oldest of its
// template past poolPerTemplate and the oldest of all past poolTotal.
func poolAdmit(e *linearMemory) {
	var evict []*linearMemory
	resPool.mu.Lock()
	same := 0
	for _, o := range resPool.free {
		if o.pf == e.pf {
			same++
		}
	}
	if same >= poolPerTemplate {
		for k, o := range resPool.free {
			if o.pf == e.pf {
				evict = append(evict, o)
				resPool.free = append(resPool.free[:k], resPool.free[k+1:]...)
				break
			}
		}
	}
	if len(resPool.free) >= poolTotal {
		evict = append(evict, resPool.free[0])
		resPool.free = resPool.free[1:]
	}
	e.admitted = time.Now()
	resPool.free = append(resPool.free, e)
	resPool.mu.Unlock()
	for _, o := range evict {
		o.release()
	}
	poolCounts.drops.Add(uint64(len(evict)))
}

// release frees an entry that leaves the pool: a pooled instance is
// closed (its memory then unmapped, not pooled again), a bare
// reservation unmapped.
func (m *linearMemory) release() {
	if v := m.inst; v != nil {
		m.inst, m.pf = nil, nil
		_ = v.mod.Close(context.Background())
		return
	}
	m.unmap()
}

// poolDrop unmaps the pooled reservations of f (its template is gone).
func poolDrop(f *imageFile) {
	poolRelease(func(m *linearMemory) bool { return m.pf == f })
}

// poolRelease takes the pooled entries for which drop is true out of the
// pool and releases them (outside the pool's lock).
func poolRelease(drop func(*linearMemory) bool) {
	var out []*linearMemory
	resPool.mu.Lock()
	keep := resPool.free[:0]
	for _, m := range resPool.free {
		if drop(m) {
			out = append(out, m)
		} else {
			keep = append(keep, m)
		}
	}
	clear(resPool.free[len(keep):])
	resPool.free = keep
	resPool.mu.Unlock()
	for _, m := range out {
		m.release()
	}
}

// reset makes m's reservation read as img followed by zeros (see above);
// false if it cannot tell which pages are private.
func (m *linearMemory) reset(img []byte) bool {
	pg := os.Getpagesize()
	if m.buf == nil || len(img)%pg != 0 || uint64(len(img)) > m.size {
		return false
	}
	mem := m.buf[:m.size]
	priv := m.known
	m.known = nil
	if len(priv) != len(mem)/pg || len(mem)%pg != 0 {
		priv = privatePages(mem, pg)
	}
	if priv == nil {
		return false
	}
	kept := 0
	for k := range min(len(priv), len(img)/pg) {
		if priv[k] {
			kept++
		}
	}
	if kept > poolMaxPrivate {
		return false
	}
	run := -1 // start of a run of private pages past img to drop
	for k, p := range priv {
		lo := k * pg
		switch {
		case p && lo < len(img):
			copy(mem[lo:lo+pg], img[lo:lo+pg])
		case p && run < 0:
			run = lo
		case !p && run >= 0:
			if syscall.Madvise(mem[run:lo], syscall.MADV_DONTNEED) != nil {
				return false
			}
			run = -1
		}
	}
	if run >= 0 && syscall.Madvise(mem[run:len(priv)*pg], syscall.MADV_DONTNEED) != nil {
		return false
	}
	m.hit = false
	return true
}
