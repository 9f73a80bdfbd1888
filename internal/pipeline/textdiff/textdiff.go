// Package textdiff computes line diffs of text and prints them as unified
// diffs (the "--- a/x", "+++ b/x", "@@ -l,n +l,n @@" format of diff -u and
// git). It owns the algorithm, Myers' O(ND) difference algorithm in its
// linear-space form (the middle snake, as in diff-match-patch's bisect),
// and nothing about files, bundles or versions: internal/pipeline's Diff
// feeds it one file at a time.
//
// The work is bounded: Options.Budget caps the diagonal steps the search may
// take (an edit script for two unrelated 10,000-line files would otherwise
// cost about 10^8), and a sub-problem that exceeds it becomes one deletion
// and one insertion, so the result is still a correct diff, only a less
// minimal one.
package textdiff

import (
	"strconv"
	"strings"
)

// Op is the kind of an edit.
type Op byte

// Edit kinds.
const (
	Equal  Op = ' '
	Delete Op = '-'
	Insert Op = '+'
)

// Edit says that lines A[A0:A1] (Delete, Equal) or B[B0:B1] (Insert, Equal)
// are deleted, inserted or kept. An Equal edit has A1-A0 == B1-B0.
type Edit struct {
	Op     Op
	A0, A1 int
	B0, B1 int
}

// Options tune Lines and Unified. The zero value uses the defaults.
type Options struct {
	// Budget caps the diagonal steps of the search (default 4,000,000).
	Budget int
	// Context is the lines of context around each hunk (default 3).
	Context int
}

const (
	defaultBudget  = 4_000_000
	defaultContext = 3
)

func (o Options) budget() int {
	if o.Budget <= 0 {
		return defaultBudget
	}
	return o.Budget
}

func (o Options) context() int {
	if o.Context <= 0 {
		return defaultContext
	}
	return o.Context
}

// SplitLines splits text after each newline; the last line has no newline
// when text does not end with one.
func SplitLines(text string) []string {
	if text == "" {
		return nil
	}
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// Lines returns the edit script that turns a into b: runs of Equal,
// Delete and Insert edits covering both in order, adjacent runs of the same
// kind merged.
func Lines(a, b []string, o Options) []Edit {
	// Intern lines as ints so comparisons are cheap.
	ids := map[string]int{}
	intern := func(ls []string) []int {
		out := make([]int, len(ls))
		for i, l := range ls {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	d := &differ{a: intern(a), b: intern(b), budget: o.budget()}
	d.diff(0, len(a), 0, len(b))
	return d.merged()
}

// differ holds one diff computation.
type differ struct {
	a, b   []int
	budget int // diagonal steps left; at 0 the search gives up
	edits  []Edit
}

func (d *differ) add(op Op, a0, a1, b0, b1 int) {
	if a0 == a1 && b0 == b1 {
		return
	}
	d.edits = append(d.edits, Edit{op, a0, a1, b0, b1})
}

// diff appends the edits of a[a0:a1] against b[b0:b1].
func (d *differ) diff(a0, a1, b0, b1 int) {
	// Common prefix and suffix.
	p := 0
	for a0+p < a1 && b0+p < b1 && d.a[a0+p] == d.b[b0+p] {
		p++
	}
	d.add(Equal, a0, a0+p, b0, b0+p)
	a0, b0 = a0+p, b0+p
	s := 0
	for a1-s > a0 && b1-s > b0 && d.a[a1-s-1] == d.b[b1-s-1] {
		s++
	}
	defer d.add(Equal, a1-s, a1, b1-s, b1)
	a1, b1 = a1-s, b1-s
	switch {
	case a0 == a1:
		d.add(Insert, a0, a0, b0, b1)
		return
	case b0 == b1:
		d.add(Delete, a0, a1, b0, b0)
		return
	}
	x, y, ok := d.bisect(a0, a1, b0, b1)
	if !ok {
		d.add(Delete, a0, a1, b0, b0)
		d.add(Insert, a1, a1, b0, b1)
		return
	}
	d.diff(a0, a0+x, b0, b0+y)
	d.diff(a0+x, a1, b0+y, b1)
}

// bisect finds the middle snake of a[a0:a1] against b[b0:b1] (both non-
// empty, with no common prefix or suffix) and returns where to split
// them, relative to a0 and b0; ok is false when there is no common line or
// the budget ran out.
func (d *differ) bisect(a0, a1, b0, b1 int) (x, y int, ok bool) {
	n, m := a1-a0, b1-b0
	maxD := (n + m + 1) / 2
	off := maxD
	vlen := 2*maxD + 2
	v1 := make([]int, vlen)
	v2 := make([]int, vlen)
	for i := range v1 {
		v1[i], v2[i] = -1, -1
	}
	v1[off+1], v2[off+1] = 0, 0
	delta := n - m
	front := delta%2 != 0
	k1start, k1end, k2start, k2end := 0, 0, 0, 0
	for dd := 0; dd < maxD; dd++ {
		for k1 := -dd + k1start; k1 <= dd-k1end; k1 += 2 {
			if d.budget--; d.budget < 0 {
				return 0, 0, false
			}
			k1o := off + k1
			var x1 int
			if k1 == -dd || k1 != dd && v1[k1o-1] < v1[k1o+1] {
				x1 = v1[k1o+1]
			} else {
				x1 = v1[k1o-1] + 1
			}
			y1 := x1 - k1
			for x1 < n && y1 < m && d.a[a0+x1] == d.b[b0+y1] {
				x1++
				y1++
			}
			v1[k1o] = x1
			switch {
			case x1 > n:
				k1end += 2
			case y1 > m:
				k1start += 2
			case front:
				k2o := off + delta - k1
				if k2o >= 0 && k2o < vlen && v2[k2o] != -1 && x1 >= n-v2[k2o] {
					return x1, y1, true
				}
			}
		}
		for k2 := -dd + k2start; k2 <= dd-k2end; k2 += 2 {
			if d.budget--; d.budget < 0 {
				return 0, 0, false
			}
			k2o := off + k2
			var x2 int
			if k2 == -dd || k2 != dd && v2[k2o-1] < v2[k2o+1] {
				x2 = v2[k2o+1]
			} else {
				x2 = v2[k2o-1] + 1
			}
			y2 := x2 - k2
			for x2 < n && y2 < m && d.a[a1-x2-1] == d.b[b1-y2-1] {
				x2++
				y2++
			}
			v2[k2o] = x2
			switch {
			case x2 > n:
				k2end += 2
			case y2 > m:
				k2start += 2
			case !front:
				k1o := off + delta - k2
				if k1o >= 0 && k1o < vlen && v1[k1o] != -1 {
					x1 := v1[k1o]
					y1 := off + x1 - k1o
					if x1 >= n-x2 {
						return x1, y1, true
					}
				}
			}
		}
	}
	return 0, 0, false
}

// merged returns the edits in order with adjacent edits of one kind joined.
func (d *differ) merged() []Edit {
	var out []Edit
	for _, e := range d.edits {
		if n := len(out); n > 0 && out[n-1].Op == e.Op && out[n-1].A1 == e.A0 && out[n-1].B1 == e.B0 {
			out[n-1].A1, out[n-1].B1 = e.A1, e.B1
			continue
		}
		out = append(out, e)
	}
	return out
}

// uline is one line of a unified diff: its kind, its text and where it is
// (or would be) in a and b, 0-based.
type uline struct {
	op   Op
	text string
	a, b int
}

// Unified prints the unified diff of a against b with the file names in
// the --- and +++ lines; it returns "" when they are equal.
func Unified(nameA, nameB, a, b string, o Options) string {
	if a == b {
		return ""
	}
	la, lb := SplitLines(a), SplitLines(b)
	var lines []uline
	for _, e := range Lines(la, lb, o) {
		switch e.Op {
		case Equal:
			for i := 0; i < e.A1-e.A0; i++ {
				lines = append(lines, uline{Equal, la[e.A0+i], e.A0 + i, e.B0 + i})
			}
		case Delete:
			for i := e.A0; i < e.A1; i++ {
				lines = append(lines, uline{Delete, la[i], i, e.B0})
			}
		case Insert:
			for i := e.B0; i < e.B1; i++ {
				lines = append(lines, uline{Insert, lb[i], e.A0, i})
			}
		}
	}
	var out strings.Builder
	out.WriteString("--- " + nameA + "\n+++ " + nameB + "\n")
	ctx := o.context()
	// A hunk runs from ctx lines before a change to ctx lines after the
	// last change that is at most 2*ctx equal lines from the one before.
	for i := 0; i < len(lines); {
		if lines[i].op == Equal {
			i++
			continue
		}
		start := max(i-ctx, 0)
		end := i
		for j := i; j < len(lines); j++ {
			if lines[j].op != Equal {
				end = j + 1
				continue
			}
			if j-end >= 2*ctx {
				break
			}
		}
		stop := min(end+ctx, len(lines))
		writeHunk(&out, lines[start:stop])
		i = stop
	}
	return out.String()
}

func writeHunk(out *strings.Builder, h []uline) {
	aStart, bStart, aLen, bLen := h[0].a, h[0].b, 0, 0
	for _, l := range h {
		if l.op != Insert {
			aLen++
		}
		if l.op != Delete {
			bLen++
		}
	}
	out.WriteString("@@ -" + rng(aStart, aLen) + " +" + rng(bStart, bLen) + " @@\n")
	for _, l := range h {
		out.WriteByte(byte(l.op))
		out.WriteString(l.text)
		if !strings.HasSuffix(l.text, "\n") {
			out.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// rng formats a hunk range: 1-based start and length, "start" alone for
// length 1 and "start-1,0" for an empty range, as diff -u does.
func rng(start, n int) string {
	switch n {
	case 0:
		return strconv.Itoa(start) + ",0"
	case 1:
		return strconv.Itoa(start + 1)
	}
	return strconv.Itoa(start+1) + "," + strconv.Itoa(n)
}

// Apply applies edits (from Lines(a, b)) to a and returns b; it is the
// check the tests and the fuzzer use.
func Apply(a, b []string, edits []Edit) []string {
	var out []string
	for _, e := range edits {
		switch e.Op {
		case Equal:
			out = append(out, a[e.A0:e.A1]...)
		case Insert:
			out = append(out, b[e.B0:e.B1]...)
		}
	}
	return out
}
