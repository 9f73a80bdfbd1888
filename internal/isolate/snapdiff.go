package isolate

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// appendRuns appends the runs turning ref into cur (same length) to out;
// base is the offset of cur in memory and *prevEnd the end of the last run.
func appendRuns(out, cur, ref []byte, base int, prevEnd *int) []byte {
	if bytes.Equal(cur, ref) {
		return out
	}
	n := len(cur)
	for i := 0; i < n; {
		if cur[i] == ref[i] {
			i++
			continue
		}
		end, eq := i+1, 0
		for k := i + 1; k < n && eq < runMergeGap; k++ {
			if cur[k] != ref[k] {
				end, eq = k+1, 0
			} else {
				eq++
			}
		}
		off := base + i
		out = binary.AppendUvarint(out, uint64(off-*prevEnd))
		out = binary.AppendUvarint(out, uint64(end-i))
		out = append(out, cur[i:end]...)
		*prevEnd = off + end - i
		i = end
	}
	return out
}

// diffImage appends the runs turning base (zeros past its end) into mem,
// reading mem below dead as zeros (the dead C stack).
func diffImage(out, mem, base []byte, dead int) []byte {
	var zero, page [snapPage]byte
	prevEnd := 0
	for lo := 0; lo < len(mem); lo += snapPage {
		hi := min(lo+snapPage, len(mem))
		cur := mem[lo:hi]
		if lo < dead {
			pg := page[:hi-lo]
			copy(pg, cur)
			clear(pg[:min(dead, hi)-lo])
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
