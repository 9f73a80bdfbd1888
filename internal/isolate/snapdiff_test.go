package isolate

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkSnapshotLevel splits a session snapshot into its diff and its
// zstd encoding at each level, to choose the level on the hibernate path.
func BenchmarkSnapshotLevel(b *testing.B) {
	_, _, tmpl, iso := benchIsolate(b)
	for range 10 {
		get(b, iso, newMemHost(), "http://x/p?q=1")
	}
	mem, _ := iso.vm.mem.Read(0, iso.vm.mem.Size())
	dead := int(iso.vm.st.StackPointer)
	b.Run("diff-copying", func(b *testing.B) { // the code before: copies every dead-stack page
		for b.Loop() {
			_ = diffImageCopying(make([]byte, 0, 4096), mem, tmpl.image, dead)
		}
	})
	b.Run("diff", func(b *testing.B) {
		var raw []byte
		for b.Loop() {
			raw = diffImage(make([]byte, 0, 4096), mem, tmpl.image, dead)
		}
		b.ReportMetric(float64(len(raw)), "raw-bytes")
		b.ReportMetric(float64(len(mem)), "mem-bytes")
	})
	b.Run("diff-private", func(b *testing.B) { // only pages the kernel reports private
		var raw []byte
		for b.Loop() {
			raw = diffPages(make([]byte, 0, 4096), mem, tmpl.image, dead, int(tmpl.st.StackPointer), iso.vm.lin.private(mem, tmpl))
		}
		b.ReportMetric(float64(len(raw)), "raw-bytes")
		n := 0
		for _, p := range iso.vm.lin.private(mem, tmpl) {
			if p {
				n++
			}
		}
		b.ReportMetric(float64(n), "private-pages")
	})
	raw := diffImage(nil, mem, tmpl.image, dead)
	for _, lv := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
		b.Run(lv.String(), func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lv), zstd.WithEncoderConcurrency(1))
			if err != nil {
				b.Fatal(err)
			}
			var out []byte
			for b.Loop() {
				out = enc.EncodeAll(raw, out[:0])
			}
			b.ReportMetric(float64(len(out)), "bytes")
		})
	}
}

// diffImageCopying is diffImage as it was, copying and clearing every page
// of the dead stack before comparing it (kept to show the difference).
func diffImageCopying(out, mem, base []byte, dead int) []byte {
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
		out = appendRunsBytewise(out, cur, ref, lo, &prevEnd)
	}
	return out
}

// appendRunsBytewise is appendRuns as it was, one byte at a time: the
// reference the word-at-a-time version must match byte for byte.
func appendRunsBytewise(out, cur, ref []byte, base int, prevEnd *int) []byte {
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

// appendRunsWindowed is appendRuns before runEnd and diffSpan: it
// extended a run with one firstDiff call per differing byte, and skipped
// equal bytes 64 at a time. BenchmarkAppendRuns compares the two.
func appendRunsWindowed(out, cur, ref []byte, base int, prevEnd *int) []byte {
	if bytes.Equal(cur, ref) {
		return out
	}
	n := len(cur)
	for i := firstDiffBlocks(cur, ref); i < n; {
		end := i + 1
		for end < n {
			lim := min(runMergeGap, n-end)
			d := firstDiffBlocks(cur[end:end+lim], ref[end:end+lim])
			if d == lim {
				break
			}
			end += d + 1
		}
		off := base + i
		out = binary.AppendUvarint(out, uint64(off-*prevEnd))
		out = binary.AppendUvarint(out, uint64(end-i))
		out = append(out, cur[i:end]...)
		*prevEnd = off + end - i
		i = end + firstDiffBlocks(cur[end:], ref[end:])
	}
	return out
}

// TestRunEndGapsClass: runs that end at, just before and just past a gap of
// runMergeGap equal bytes, at every alignment against the 8-byte words
// runEnd reads, and within the last word of the page, give the bytewise
// runs.
func TestRunEndGapsClass(t *testing.T) {
	const n = 96
	for start := range n {
		for gap := runMergeGap - 2; gap <= runMergeGap+2; gap++ {
			for runLen := 1; runLen <= 11; runLen++ {
				ref := make([]byte, n)
				cur := make([]byte, n)
				for k := start; k < start+runLen && k < n; k++ {
					cur[k] = 1
				}
				if p := start + runLen + gap; p < n {
					cur[p] = 2 // a difference just across the gap
				}
				pa, pb := 0, 0
				got := appendRuns(nil, cur, ref, 0, &pa)
				want := appendRunsBytewise(nil, cur, ref, 0, &pb)
				if !bytes.Equal(got, want) || pa != pb {
					t.Fatalf("start %d gap %d run %d: got %x, want %x", start, gap, runLen, got, want)
				}
			}
		}
	}
}

// BenchmarkAppendRuns diffs a session's heap (its private pages after a
// request) against its template with the run extension before runEnd
// (windowed) and with it (word).
func BenchmarkAppendRuns(b *testing.B) {
	_, _, tmpl, iso := benchIsolate(b)
	get(b, iso, newMemHost(), "http://x/p?q=1")
	mem, _ := iso.vm.mem.Read(0, iso.vm.mem.Size())
	var pages [][2][]byte
	for lo := 0; lo+snapPage <= min(len(mem), len(tmpl.image)); lo += snapPage {
		if !bytes.Equal(mem[lo:lo+snapPage], tmpl.image[lo:lo+snapPage]) {
			pages = append(pages, [2][]byte{mem[lo : lo+snapPage], tmpl.image[lo : lo+snapPage]})
		}
	}
	for _, c := range []struct {
		name string
		f    func(out, cur, ref []byte, base int, prevEnd *int) []byte
	}{{"windowed", appendRunsWindowed}, {"word", appendRuns}} {
		b.Run(c.name, func(b *testing.B) {
			out := make([]byte, 0, 64<<10)
			for b.Loop() {
				out = out[:0]
				prev := 0
				for k, p := range pages {
					out = c.f(out, p[0], p[1], k*snapPage, &prev)
				}
			}
			b.ReportMetric(float64(len(pages)), "pages")
			b.ReportMetric(float64(len(out)), "raw-bytes")
		})
	}
}

// TestSnapshotDiffEncodingClass: the word-at-a-time diff writes exactly the
// bytes the bytewise one did (snapshots stay identical), for dense, sparse,
// edge-touching and gap-boundary differences, and for a live isolate's heap
// against its template.
func TestSnapshotDiffEncodingClass(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for c := range 400 {
		n := 1 + rng.IntN(3*snapPage)
		ref := make([]byte, n)
		for i := range ref {
			ref[i] = byte(rng.IntN(4))
		}
		cur := bytes.Clone(ref)
		switch c % 4 {
		case 0: // sparse
			for range 1 + rng.IntN(20) {
				cur[rng.IntN(n)] ^= 0xff
			}
		case 1: // dense
			for i := range cur {
				if rng.IntN(3) == 0 {
					cur[i]++
				}
			}
		case 2: // edges and runs separated by gaps around runMergeGap
			cur[0]++
			cur[n-1]++
			for p := 0; p < n; p += 1 + rng.IntN(2*runMergeGap+2) {
				cur[p] ^= 1
			}
		case 3: // equal
		}
		pa, pb := 5, 5
		got := appendRuns(nil, cur, ref, 100, &pa)
		want := appendRunsBytewise(nil, cur, ref, 100, &pb)
		if !bytes.Equal(got, want) || pa != pb {
			t.Fatalf("case %d (n=%d): runs differ:\n got %x\nwant %x", c, n, got, want)
		}
	}
	rt := testRuntime(t)
	ctx := context.Background()
	tmpl, err := rt.Template(ctx, Spec{Module: benchModule})
	if err != nil {
		t.Fatal(err)
	}
	iso, err := rt.Restore(ctx, Spec{Module: benchModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(ctx)
	get(t, iso, newMemHost(), "http://x/p?q=1")
	mem, _ := iso.vm.mem.Read(0, iso.vm.mem.Size())
	dead := int(iso.vm.st.StackPointer)
	if got, want := diffImage(nil, mem, tmpl.image, dead), diffImageCopying(nil, mem, tmpl.image, dead); !bytes.Equal(got, want) {
		t.Fatalf("heap diff differs from the bytewise one (%d vs %d bytes)", len(got), len(want))
	}
}

// FuzzAppendRuns: any pair of equal-length pages gives the bytewise runs,
// and parseRuns applied to ref gives cur back.
func FuzzAppendRuns(f *testing.F) {
	f.Add([]byte("abcdefgh-ijklmnop"), []byte("abcdXfgh-ijklmnoY"))
	f.Add(make([]byte, 40), append(make([]byte, 39), 1))
	f.Fuzz(func(t *testing.T, ref, cur []byte) {
		n := min(len(ref), len(cur))
		ref, cur = ref[:n], cur[:n]
		pa, pb := 0, 0
		got := appendRuns(nil, cur, ref, 0, &pa)
		if want := appendRunsBytewise(nil, cur, ref, 0, &pb); !bytes.Equal(got, want) {
			t.Fatalf("runs differ: %x vs %x", got, want)
		}
		ps, err := parseRuns(got, n)
		if err != nil {
			t.Fatal(err)
		}
		back := bytes.Clone(ref)
		(&image{patches: ps}).apply(back)
		if !bytes.Equal(back, cur) {
			t.Fatal("runs do not rebuild cur")
		}
	})
}

// TestSnapshotBufferReuseClass: snapshots built in pooled buffers are
// byte for byte those built alone, while sessions with other heaps
// snapshot and the template (a full snapshot, no base hash) is encoded
// beside them, each reusing the buffers the others left.
func TestSnapshotBufferReuseClass(t *testing.T) {
	rt, spec, tmpl := benchTemplate(t)
	ctx := context.Background()
	var err error
	const n = 4
	isos := make([]*Isolate, n)
	want := make([][]byte, n)
	for k := range isos {
		if isos[k], err = rt.Restore(ctx, spec, nil, tmpl); err != nil {
			t.Fatal(err)
		}
		defer isos[k].Close(ctx)
		for range k + 1 { // heaps of different sizes
			get(t, isos[k], newMemHost(), "http://x/p?q="+strings.Repeat("secret", 50*k))
		}
		if want[k], err = isos[k].Snapshot(tmpl); err != nil {
			t.Fatal(err)
		}
	}
	wantTmpl := tmpl.Marshal(rt)
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	for k := range isos {
		wg.Go(func() {
			for range 40 {
				got, err := isos[k].Snapshot(tmpl)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want[k]) {
					errs <- fmt.Errorf("session %d: snapshot differs from the one built alone (%d vs %d bytes)", k, len(got), len(want[k]))
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if got := tmpl.Marshal(rt); !bytes.Equal(got, wantTmpl) {
				errs <- fmt.Errorf("template encoding differs from the one built alone (%d vs %d bytes)", len(got), len(wantTmpl))
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
