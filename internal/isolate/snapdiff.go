package isolate

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Byte-run diffs (snapshot format version 2).
//
// A session's heap differs from its template in a few kilobytes scattered
// over dozens of pages (allocator metadata, counters, the few objects a
// request leaves behind), so storing whole 4 KiB pages made deltas 20x
// larger than the change. Version 2 stores runs of differing bytes:
//
//	repeated { uvarint gap, uvarint n, n bytes }
//
// where gap counts the unchanged bytes since the end of the previous run.
// Runs separated by fewer than runMergeGap equal bytes are merged, since a
// run header costs about as much.

const runMergeGap = 8

// runEnd compares a word of runMergeGap bytes at once.
const _ = uint(runMergeGap-8) + uint(8-runMergeGap)

// diffSpan is the stretch firstDiff compares at once first: the gaps
// between a heap's runs are hundreds of bytes long on average, and one
// compare call of diffSpan bytes costs little more than one of diffBlock.
const diffSpan = 512

// diffBlock is the stretch firstDiff compares at once before it looks for
// the differing byte word by word.
const diffBlock = 64

// appendRuns appends the runs turning ref into cur (same length) to out;
// base is the offset of cur in memory and *prevEnd the end of the last run.
// Equal stretches are skipped a word at a time (firstDiff).
func appendRuns(out, cur, ref []byte, base int, prevEnd *int) []byte {
	if bytes.Equal(cur, ref) {
		return out
	}
	n := len(cur)
	for i := firstDiff(cur, ref); i < n; {
		end := runEnd(cur, ref, i+1)
		off := base + i
		out = binary.AppendUvarint(out, uint64(off-*prevEnd))
		out = binary.AppendUvarint(out, uint64(end-i))
		out = append(out, cur[i:end]...)
		*prevEnd = off + end - i
		i = end + firstDiff(cur[end:], ref[end:])
	}
	return out
}

// runEnd is the end of the run whose last differing byte so far is at
// end-1: another difference within runMergeGap bytes joins the run. Eight
// bytes are compared at once, and the run jumps to the last difference
// among them (every difference in the window joins it, so the ones between
// need no look of their own); only the final few bytes of cur go one by one.
func runEnd(cur, ref []byte, end int) int {
	n := len(cur)
	for end+runMergeGap <= n {
		x := binary.LittleEndian.Uint64(cur[end:]) ^ binary.LittleEndian.Uint64(ref[end:])
		if x == 0 {
			return end
		}
		end += 8 - bits.LeadingZeros64(x)/8
	}
	for j := end; j < n; j++ {
		if cur[j] != ref[j] {
			end = j + 1
		}
	}
	return end
}

// firstDiff is the index of the first byte where a and b (same length)
// differ, or len(a). Equal stretches of diffSpan, then diffBlock bytes are
// skipped with the vectorised compare; the word loop then finds the byte.
func firstDiff(a, b []byte) int {
	i := 0
	for i+diffSpan <= len(a) && bytes.Equal(a[i:i+diffSpan], b[i:i+diffSpan]) {
		i += diffSpan
	}
	return i + firstDiffBlocks(a[i:], b[i:])
}

// firstDiffBlocks is firstDiff without the diffSpan skip: equal diffBlock
// stretches, then words, then the byte.
func firstDiffBlocks(a, b []byte) int {
	i := 0
	for i+diffBlock <= len(a) && bytes.Equal(a[i:i+diffBlock], b[i:i+diffBlock]) {
		i += diffBlock
	}
	for ; i+8 <= len(a); i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < len(a) && a[i] == b[i]; i++ {
	}
	return i
}

// diffImage appends the runs turning base (zeros past its end) into mem,
// reading mem below dead as zeros (the dead C stack).
func diffImage(out, mem, base []byte, dead int) []byte {
	return diffPages(out, mem, base, dead, 0, nil)
}

// diffPages is diffImage told which pages cannot differ, so that it
// neither reads nor compares them (reading a page the session never
// touched costs a page fault; comparing the dead stack costs a pass over
// a megabyte):
//   - pages wholly below both dead and baseZero, where base is known to be
//     zero (a template's own dead stack: images are canonical);
//   - with a non-nil priv (one entry per snapPage page of mem, see
//     linearMemory.private), pages at or above dead whose entry is false:
//     they still read as base (zeros past its end).
func diffPages(out, mem, base []byte, dead, baseZero int, priv []bool) []byte {
	var zero, page [snapPage]byte
	prevEnd := 0
	if base == nil {
		baseZero = len(mem)
	}
	bothZero := min(dead, baseZero)
	for lo := 0; lo < len(mem); lo += snapPage {
		if lo+snapPage <= bothZero {
			continue
		}
		if p := lo / snapPage; priv != nil && lo >= dead && p < len(priv) && !priv[p] {
			continue
		}
		hi := min(lo+snapPage, len(mem))
		cur := mem[lo:hi]
		switch {
		case hi <= dead: // wholly dead stack: reads as zeros, no copy
			cur = zero[:hi-lo]
		case lo < dead:
			pg := page[:hi-lo]
			copy(pg, cur)
			clear(pg[:dead-lo])
			cur = pg
		}
		var ref []byte
		switch {
		case hi <= len(base):
			ref = base[lo:hi]
		case lo >= len(base):
			ref = zero[:hi-lo]
		default:
			ref = append(append(make([]byte, 0, hi-lo), base[lo:]...), zero[:hi-len(base)]...)
		}
		out = appendRuns(out, cur, ref, lo, &prevEnd)
	}
	return out
}

// parseRuns decodes runs into patches within size bytes. The patches alias
// data.
func parseRuns(data []byte, size int) ([]patch, error) {
	var out []patch
	pos := 0
	for len(data) > 0 {
		gap, k := binary.Uvarint(data)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad run gap", ErrBadSnapshot)
		}
		data = data[k:]
		n, k := binary.Uvarint(data)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad run length", ErrBadSnapshot)
		}
		data = data[k:]
		if gap > uint64(size) || n > uint64(len(data)) || uint64(pos)+gap+n > uint64(size) {
			return nil, fmt.Errorf("%w: run out of range", ErrBadSnapshot)
		}
		pos += int(gap)
		out = append(out, patch{off: pos, data: data[:n]})
		pos += int(n)
		data = data[n:]
	}
	return out, nil
}
