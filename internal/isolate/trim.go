package isolate

import (
	"bytes"
	"encoding/binary"
	"os"
	"sync"
	"syscall"

	"github.com/tetratelabs/wazero/api"
)

// Trim releases memory an idle isolate can do without, for the session
// layer to call when a session goes quiet (it is not needed for
// correctness, and the next call pays to rebuild):
//
//   - wazero's machine stacks for calls into the guest, which deep JS grows
//     to ~200 KiB and keeps (the next call regrows them: tens of µs);
//   - the dead part of the C stack;
//   - for an isolate restored from a template, private copies of pages that
//     again equal the template's, which then share the template's RAM;
//     elsewhere, pages that are all zero.
//
// It waits for a running call and is a no-op on a dead isolate.
func (i *Isolate) Trim() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.gen++
	if i.dead != nil {
		return nil
	}
	v := i.vm
	v.disp = [2]api.Function{}
	if v.lin == nil || v.lin.buf == nil {
		return nil
	}
	mem, ok := v.mem.Read(0, v.mem.Size())
	if !ok {
		return nil
	}
	pg := os.Getpagesize()
	sp := int(stackTop)
	if g := v.mod.ExportedGlobal("__stack_pointer"); g != nil {
		sp = int(uint32(g.Get()))
	}
	if dead := sp / pg * pg; dead > 0 && dead <= len(mem) {
		if err := syscall.Madvise(mem[:dead], syscall.MADV_DONTNEED); err != nil {
			return err
		}
	}
	var ref []byte
	if i.base != nil {
		ref = i.base.image
	}
	private := privatePages(mem, pg)
	zero := make([]byte, pg)
	runStart := -1
	flush := func(end int) error {
		if runStart >= 0 {
			err := syscall.Madvise(mem[runStart:end], syscall.MADV_DONTNEED)
			runStart = -1
			return err
		}
		return nil
	}
	for lo := (sp + pg - 1) / pg * pg; lo+pg <= len(mem); lo += pg {
		p := lo / pg
		drop := false
		if private == nil || private[p] {
			page := mem[lo : lo+pg]
			if lo+pg <= len(ref) {
				drop = bytes.Equal(page, ref[lo:lo+pg])
			} else if lo >= len(ref) {
				drop = bytes.Equal(page, zero)
			}
		}
		switch {
		case drop && runStart < 0:
			runStart = lo
		case !drop:
			if err := flush(lo); err != nil {
				return err
			}
		}
	}
	return flush(len(mem) / pg * pg)
}

// privatePages reports, per page of mem, whether it is present and
// anonymous (a private copy, not the template file's page) or swapped out
// (or under migration: either way its content is unknown here), from
// /proc/self/pagemap; nil when that is unreadable.
func privatePages(mem []byte, pg int) []bool {
	return pagemapBits(mem, pg, func(present, swapped, file bool) bool {
		return present && !file || swapped
	})
}

// sharedPages reports, per page of mem, whether it maps its file's page
// (present and not a private copy); nil when pagemap is unreadable.
func sharedPages(mem []byte, pg int) []bool {
	return pagemapBits(mem, pg, func(present, _, file bool) bool { return present && file })
}

// pagemapBits reports, per page of mem, what is of its /proc/self/pagemap
// entry's present, swapped and file bits; nil when that is unreadable.
func pagemapBits(mem []byte, pg int, is func(present, swapped, file bool) bool) []bool {
	f := pagemap()
	if f == nil {
		return nil
	}
	n := len(mem) / pg
	buf := make([]byte, 8*n)
	start := int64(uintptr(unsafePointer(mem))) / int64(pg) * 8
	if _, err := f.ReadAt(buf, start); err != nil {
		return nil
	}
	out := make([]bool, n)
	for k := range out {
		e := binary.LittleEndian.Uint64(buf[8*k:])
		out[k] = is(e&(1<<63) != 0, e&(1<<62) != 0, e&(1<<61) != 0)
	}
	return out
}

// pagemap is /proc/self/pagemap, opened once per process (opening it costs
// twice what reading a session's entries does); reads use pread and are
// safe from any goroutine. Nil when it cannot be opened.
var pagemap = sync.OnceValue(func() *os.File {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	return f
})
