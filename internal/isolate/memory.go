package isolate

import (
	"fmt"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

const wasmPage = 64 << 10

// linearMemory backs one isolate's wasm memory with a private anonymous
// mapping reserved at the isolate's limit. Growing never copies, pages the
// guest never touches cost no RSS, and growing past the limit fails the
// guest's memory.grow (QuickJS then throws "out of memory").
type linearMemory struct {
	buf   []byte // the whole reservation
	limit uint64 // bytes
	size  uint64 // current length handed to wazero
	hit   bool   // a grow was refused because of limit
	// pf, if not nil, is the template file restores map over this
	// reservation: Free then returns it to the pool (pool.go) when mapped
	// says [0, len(pf.buf)) is that file's mapping. reused: it came from
	// the pool, mapped and reset to pf's image.
	pf             *imageFile
	mapped, reused bool
	// noFaultAround: the template's mapping does no fault-around
	// (faultaround.go), so a mapped page of it is one the guest read.
	noFaultAround bool
	// inst, if not nil, is the instance whose memory this is while the
	// two wait in the pool together (instpool.go); instRT and instCode
	// are the runtime and compiled module it was made by.
	inst     *vm
	instRT   *Runtime
	instCode wazero.CompiledModule
	// admitted is when the entry went into the pool (pool.go).
	admitted time.Time
	// known, if not nil, is which pages of buf[:size] are private, read
	// by a snapshot with nothing run since (Isolate.Close sets it): reset
	// uses it instead of reading /proc/self/pagemap.
	known []bool
}

// allocator returns a wazero MemoryAllocator that records the memory it makes
// in *out. limit is in bytes. With pf, the memory is for a restore from
// that template file by a module without data segments: it may come from,
// and goes back to, the reservation pool.
func allocator(limit uint64, out **linearMemory, pf *imageFile) experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capacity, max uint64) experimental.LinearMemory {
		lim := limit
		if max < lim {
			lim = max
		}
		m := &linearMemory{limit: lim, pf: pf}
		*out = m
		return m
	})
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		m.hit = true
		return nil
	}
	if m.buf == nil && m.pf != nil {
		if p := poolGet(m.pf, m.limit); p != nil {
			m.buf, m.mapped, m.reused = p.buf, true, true
			m.noFaultAround = p.noFaultAround
		}
	}
	if m.buf == nil {
		b, err := syscall.Mmap(-1, 0, int(m.limit), syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
		if err != nil {
			return nil
		}
		m.buf = b
	}
	m.size = size
	return m.buf[:size:size]
}

func (m *linearMemory) Free() {
	if m.inst != nil {
		// A pooled instance closed by its runtime's Close: it leaves the
		// pool with its reservation.
		instUnpool(m)
		m.inst = nil
		m.unmap()
		return
	}
	if m.buf != nil && m.pf != nil && m.mapped && poolPut(m) {
		m.buf = nil
		return
	}
	m.unmap()
}

// unmap releases the reservation.
func (m *linearMemory) unmap() {
	if m.buf != nil {
		_ = syscall.Munmap(m.buf)
		m.buf = nil
	}
}

// resident reports how many bytes of the reservation are resident (RSS), via
// mincore. It is for measurement only.
func (m *linearMemory) resident() (int, error) {
	if m.buf == nil || m.size == 0 {
		return 0, nil
	}
	pg := syscall.Getpagesize()
	n := (int(m.size) + pg - 1) / pg
	vec := make([]byte, n)
	_, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafePointer(m.buf)), uintptr(m.size), uintptr(unsafePointer(vec)))
	if e != 0 {
		return 0, fmt.Errorf("mincore: %w", e)
	}
	r := 0
	for _, v := range vec {
		if v&1 != 0 {
			r += pg
		}
	}
	return r, nil
}

// mapImage maps the first n bytes of the file fd copy-on-write over the
// start of the reservation: pages the guest only reads stay shared with the
// file (and with every other isolate mapping it); a write copies one page.
// Whatever the reservation held in that range before is discarded. A read
// maps only the page read, not its neighbours (faultaround.go).
func (m *linearMemory) mapImage(f *imageFile) error {
	fd, n := f.fd, len(f.buf)
	if m.buf == nil || n > len(m.buf) || n%syscall.Getpagesize() != 0 {
		return fmt.Errorf("isolate: map image of %d bytes into %d", n, len(m.buf))
	}
	_, _, e := syscall.Syscall6(syscall.SYS_MMAP, uintptr(unsafePointer(m.buf)), uintptr(n),
		syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_FIXED, uintptr(fd), 0)
	if e != 0 {
		return fmt.Errorf("isolate: mmap template: %w", e)
	}
	m.noFaultAround = disableFaultAround(m.buf[:n])
	m.mapped = m.pf == f
	return nil
}

// zero makes [lo, hi) of an anonymous part of the reservation read as zero
// again, dropping its pages instead of writing them.
func (m *linearMemory) zero(lo, hi int) error {
	pg := syscall.Getpagesize()
	a := (lo + pg - 1) / pg * pg
	if a > hi {
		a = hi
	}
	clear(m.buf[lo:a])
	if a < hi {
		if err := syscall.Madvise(m.buf[a:hi], syscall.MADV_DONTNEED); err != nil {
			return fmt.Errorf("isolate: madvise: %w", err)
		}
	}
	return nil
}
