package isolate

import (
	"os"
	"syscall"
)

// Hot pages: an isolate restored from a template maps the template's image
// copy-on-write. QuickJS reads an object before it writes it, so most pages
// a request dirties are first mapped read-only and then copied on the
// write, and each such copy must flush the old mapping from every CPU the
// process runs on (an inter-processor interrupt per page; on a VM the
// largest single cost of activating a session, see docs/PERFORMANCE.md).
//
// A template therefore learns, from the first session of it that
// hibernates, which of its pages that session had made private, and later
// restores make those pages private up front with one
// madvise(MADV_POPULATE_WRITE) per run of pages: a copy with no earlier
// mapping to flush. Pages the learned set misses still copy on write as
// before; pages it names needlessly cost RAM only until Trim hands pages
// equal to the template back to it.
//
// Where the template's mapping does no fault-around (faultaround.go), each
// page a session only reads costs a fault of its own; the template also
// learns those pages (mapped, not private) and restores map them with one
// madvise(MADV_POPULATE_READ) per run, after the writes' runs. Pages named
// needlessly there cost RSS, not RAM: they stay the template's.

// madvPopulateRead and madvPopulateWrite are MADV_POPULATE_READ and
// MADV_POPULATE_WRITE (Linux 5.14); older kernels refuse them with EINVAL
// and restores then fault pages in one by one.
const (
	madvPopulateRead  = 22
	madvPopulateWrite = 23
)

// hotPagesOff turns populating off (benchmarks compare the two).
var hotPagesOff bool

// pageRun is a run of pages [lo, hi) in bytes.
type pageRun struct{ lo, hi int }

// hotPages are the pages of a template its sessions write (made private
// on restore) and only read (mapped on restore).
type hotPages struct{ write, read []pageRun }

// learnHot records, once per template, the pages of mem (mapped from t)
// that are private and, if reads (the mapping does no fault-around, so a
// mapped page was read), those mapped from t's file; priv, if not nil, is
// privatePages of mem. Caller holds the isolate's lock.
func (t *Template) learnHot(mem []byte, priv []bool, reads bool) {
	if t.hot.Load() != nil || t.file == nil {
		return
	}
	pg := os.Getpagesize()
	n := min(len(mem), len(t.image)) / pg * pg
	if priv == nil || len(priv) < n/pg {
		priv = privatePages(mem[:n], pg)
	}
	if priv == nil {
		return
	}
	h := &hotPages{write: pageRuns(priv[:n/pg], pg)}
	if reads {
		if shared := sharedPages(mem[:n], pg); shared != nil && count(shared) <= maxReadPages {
			h.read = pageRuns(shared, pg)
		}
	}
	t.hot.CompareAndSwap(nil, h)
}

// maxReadPages bounds the read pages a template learns: a first session
// that lived long and read much would otherwise have every later restore
// map all it read (RSS a fresh session does not need); above it restores
// fault their reads in one by one. A hello agent's session reads 24.
const maxReadPages = 128

// count is how many of in are true.
func count(in []bool) int {
	n := 0
	for _, b := range in {
		if b {
			n++
		}
	}
	return n
}

// pageRuns returns the runs of pages for which in is true, in bytes.
func pageRuns(in []bool, pg int) []pageRun {
	runs := []pageRun{}
	for k := 0; k < len(in); k++ {
		if !in[k] {
			continue
		}
		lo := k
		for k < len(in) && in[k] {
			k++
		}
		runs = append(runs, pageRun{lo * pg, k * pg})
	}
	return runs
}

// populateHot makes t's learned hot pages of the mapped reservation
// private and, if the mapping does no fault-around, maps the pages
// sessions read; errors only cost the speed-up.
func (m *linearMemory) populateHot(t *Template) {
	h := t.hot.Load()
	if h == nil || hotPagesOff {
		return
	}
	for _, r := range h.write {
		if r.hi > len(m.buf) {
			return
		}
		if err := syscall.Madvise(m.buf[r.lo:r.hi], madvPopulateWrite); err != nil {
			return
		}
	}
	if !m.noFaultAround {
		return
	}
	for _, r := range h.read {
		if r.hi > len(m.buf) {
			return
		}
		if err := syscall.Madvise(m.buf[r.lo:r.hi], madvPopulateRead); err != nil {
			return
		}
	}
}

// private reports, per snapPage page of mem (the whole memory of an
// isolate whose first len(t.image) bytes are mapped from t's file), whether
// the page may differ from t's image (zeros past its end): nil when that
// is not known, and then every page must be compared.
//
// A page that is neither present-and-anonymous nor swapped still reads as
// the sealed template file (or, past its end, as zero: never written, or
// dropped by Trim or zero), so it cannot differ.
func (m *linearMemory) private(mem []byte, t *Template) []bool {
	if m == nil || t == nil || t.file == nil || os.Getpagesize() != snapPage ||
		len(mem) == 0 || uint64(len(mem)) != m.size || &mem[0] != &m.buf[0] {
		return nil
	}
	return privatePages(mem, snapPage)
}
