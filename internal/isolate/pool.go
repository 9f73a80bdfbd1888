package isolate

import (
	"os"
	"sync"
	"syscall"
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
// small agent; one that dirtied more is unmapped instead).
const (
	poolPerTemplate = 8
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

// poolGet takes a reservation of limit bytes reset to f, or nil.
func poolGet(f *imageFile, limit uint64) *linearMemory {
	if poolOff {
		return nil
	}
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	for k := len(resPool.free) - 1; k >= 0; k-- {
		m := resPool.free[k]
		if m.pf == f && m.limit == limit {
			resPool.free = append(resPool.free[:k], resPool.free[k+1:]...)
			return m
		}
	}
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
		return false
	}
	var evict []*linearMemory
	resPool.mu.Lock()
	same := 0
	for _, o := range resPool.free {
		if o.pf == f {
			same++
		}
	}
	if same >= poolPerTemplate {
		for k, o := range resPool.free {
			if o.pf == f {
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
	resPool.free = append(resPool.free, &linearMemory{buf: m.buf, limit: m.limit, pf: f})
	resPool.mu.Unlock()
	for _, o := range evict {
		o.unmap()
	}
	return true
}

// poolDrop unmaps the pooled reservations of f (its template is gone).
func poolDrop(f *imageFile) {
	var drop []*linearMemory
	resPool.mu.Lock()
	keep := resPool.free[:0]
	for _, m := range resPool.free {
		if m.pf == f {
			drop = append(drop, m)
		} else {
			keep = append(keep, m)
		}
	}
	clear(resPool.free[len(keep):])
	resPool.free = keep
	resPool.mu.Unlock()
	for _, m := range drop {
		m.unmap()
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
	m.size, m.hit = 0, false
	return true
}
