package isolate

import (
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"
)

// mappedPages reports, per page of mem, whether it is mapped (present or
// swapped) in this process, from /proc/self/pagemap; file says whether a
// present page is the file's (not a private copy).
func mappedPages(tb testing.TB, mem []byte) (mapped, file []bool) {
	tb.Helper()
	f := pagemap()
	if f == nil {
		tb.Skip("no /proc/self/pagemap")
	}
	pg := os.Getpagesize()
	n := len(mem) / pg
	buf := make([]byte, 8*n)
	if _, err := f.ReadAt(buf, int64(uintptr(unsafePointer(mem)))/int64(pg)*8); err != nil {
		tb.Fatal(err)
	}
	mapped, file = make([]bool, n), make([]bool, n)
	for k := range n {
		e := binary.LittleEndian.Uint64(buf[8*k:])
		mapped[k] = e&(3<<62) != 0
		file[k] = e&(1<<63) != 0 && e&(1<<61) != 0
	}
	return mapped, file
}

var faultSink byte

// TestTemplateReadMapsOnePage reads one byte of a template mapped over a
// reservation and checks that only that page got mapped: with the
// kernel's fault-around, the 16 pages of its 64 KiB window would be, and
// every session's RSS would count them (faultaround.go).
func TestTemplateReadMapsOnePage(t *testing.T) {
	pg := os.Getpagesize()
	img := make([]byte, 64*pg)
	for k := range img {
		img[k] = byte(k/pg + 1)
	}
	f, err := newImageFile(img)
	if err != nil {
		t.Skipf("no memfd: %v", err)
	}
	defer f.close()
	t.Cleanup(func() { keepFaultAround.Store(false) })
	for _, keep := range []bool{false, true} {
		keepFaultAround.Store(keep)
		m := &linearMemory{limit: uint64(len(img)) * 2}
		if m.Reallocate(m.limit) == nil {
			t.Fatal("reserve")
		}
		if err := m.mapImage(f); err != nil {
			t.Fatal(err)
		}
		faultSink += m.buf[20*pg+7]
		mapped, _ := mappedPages(t, m.buf[:len(img)])
		n := 0
		for _, ok := range mapped {
			if ok {
				n++
			}
		}
		if keep {
			t.Logf("with fault-around: %d pages mapped by one read", n)
		} else if faultAroundBroken.Load() {
			m.unmap()
			t.Skipf("userfaultfd unavailable here: fault-around stays on (%d pages mapped by one read)", n)
		} else if n != 1 || !mapped[20] {
			t.Errorf("one read mapped %d pages (page 20: %v), want only that page", n, mapped[20])
		}
		m.unmap()
	}
}

// TestFreshSessionMapsFewTemplatePages restores a fresh session of a hello
// agent, serves a request and counts the template pages its memory maps
// read-only. Before fault-around was turned off that was 93 pages, of
// which 24 were read; the bound leaves room for the prelude to grow.
func TestFreshSessionMapsFewTemplatePages(t *testing.T) {
	rt, spec, tmpl := benchTemplate(t)
	if tmpl.file == nil {
		t.Skip("no memfd template")
	}
	ctx := context.Background()
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(ctx) //nolint:errcheck
	get(t, iso, newMemHost(), "http://x/")
	if faultAroundBroken.Load() {
		t.Skip("userfaultfd unavailable here: fault-around stays on")
	}
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if iso.vm.lin.reused {
		t.Skip("restored into a pooled reservation")
	}
	_, file := mappedPages(t, iso.vm.lin.buf[:len(tmpl.image)])
	shared := 0
	for _, ok := range file {
		if ok {
			shared++
		}
	}
	t.Logf("%d template pages mapped read-only", shared)
	if shared > 48 {
		t.Errorf("a fresh session maps %d template pages read-only, want at most 48", shared)
	}
}

// TestRestoreMapsLearnedReads: a template learns, from the first session
// that hibernates, the pages it only read (a non-empty set, bounded), and a
// later restore has every one of them mapped from the template before its
// first request; a session restored into a reused reservation teaches
// nothing (it maps what earlier sessions read).
func TestRestoreMapsLearnedReads(t *testing.T) {
	rt, spec, tmpl := benchTemplate(t)
	if tmpl.file == nil {
		t.Skip("no memfd template")
	}
	poolOff = true
	t.Cleanup(func() { poolOff = false })
	ctx := context.Background()
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	get(t, iso, newMemHost(), "http://x/")
	if faultAroundBroken.Load() {
		_ = iso.Close(ctx)
		t.Skip("userfaultfd unavailable here: fault-around stays on, nothing to learn")
	}
	snap, err := iso.Snapshot(tmpl)
	_ = iso.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := tmpl.hot.Load()
	if h == nil || len(h.read) == 0 {
		t.Fatalf("no read pages learned: %+v", h)
	}
	pages := 0
	for _, r := range h.read {
		pages += (r.hi - r.lo) / os.Getpagesize()
	}
	if pages > maxReadPages {
		t.Fatalf("learned %d read pages, over the bound %d", pages, maxReadPages)
	}
	again, err := rt.Restore(ctx, spec, snap, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx) //nolint:errcheck
	again.mu.Lock()
	_, file := mappedPages(t, again.vm.lin.buf[:len(tmpl.image)])
	again.mu.Unlock()
	pg := os.Getpagesize()
	for _, r := range h.read {
		for p := r.lo / pg; p < r.hi/pg; p++ {
			if !file[p] {
				t.Fatalf("learned read page %d is not mapped from the template after a restore", p)
			}
		}
	}
	t.Logf("%d read pages learned in %d runs, all mapped by a restore", pages, len(h.read))
}

// BenchmarkActivateFaultAround restores a hibernated hello session and
// serves one request with the reservation pool off (each restore maps the
// template afresh), alternating fault-around on and off in the same loop
// so machine load hits both alike; it reports each one's p50/p99 and
// minor faults per activation.
//
//	go test -run '^$' -bench ActivateFaultAround -benchtime 2000x ./internal/isolate
func BenchmarkActivateFaultAround(b *testing.B) {
	rt, spec, tmpl := benchTemplate(b)
	ctx := context.Background()
	rt.PrepareRestores()
	h := newMemHost()
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		b.Fatal(err)
	}
	get(b, iso, h, "http://x/")
	snap, err := iso.Snapshot(tmpl) // learns the hot pages, as sessions do
	if err != nil {
		b.Fatal(err)
	}
	_ = iso.Close(ctx)
	poolOff = true
	defer func() { poolOff = false; keepFaultAround.Store(false) }()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var lat [2][]time.Duration
	var flt [2]int64
	n := 0
	for b.Loop() {
		k := n % 2 // 0: fault-around kept (as before), 1: off
		n++
		keepFaultAround.Store(k == 0)
		_, f0 := threadCPU()
		t0 := time.Now()
		iso, err := rt.Restore(ctx, spec, snap, tmpl)
		if err != nil {
			b.Fatal(err)
		}
		get(b, iso, h, "http://x/")
		lat[k] = append(lat[k], time.Since(t0))
		_, f1 := threadCPU()
		flt[k] += f1 - f0
		_ = iso.Close(ctx)
	}
	for k, name := range []string{"kept", "off"} {
		if len(lat[k]) == 0 {
			continue
		}
		slices.Sort(lat[k])
		b.ReportMetric(float64(lat[k][len(lat[k])/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(lat[k][len(lat[k])*99/100].Microseconds()), name+"-p99-µs")
		b.ReportMetric(float64(flt[k])/float64(len(lat[k])), name+"-faults")
	}
}
