package isolate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// prefillTemplate is instTemplate on a runtime of its own that keeps n
// instances ready; its pooled entries are dropped when the test ends.
func prefillTemplate(t *testing.T, n int) (*Runtime, *Template) {
	t.Helper()
	rt, err := NewRuntime(context.Background(), Config{
		CacheDir: filepath.Join(os.TempDir(), "agentcloud-isolate-test-cache"), Prefill: n,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	rt, tmpl := instTemplateOn(t, rt)
	t.Cleanup(func() { poolDrop(tmpl.file) })
	drainPool()
	return rt, tmpl
}

// drainPool releases every pooled entry, so that what earlier tests left
// (until their templates' cleanups run) does not fill the pool.
func drainPool() {
	resPool.mu.Lock()
	free := resPool.free
	resPool.free = nil
	resPool.mu.Unlock()
	for _, m := range free {
		m.release()
	}
}

// restoreTwice restores spec from tmpl twice, so the template is in demand
// (prefillDemandWindow), and returns the second isolate; the first is
// closed when the test ends.
func restoreTwice(t *testing.T, ctx context.Context, rt *Runtime, spec Spec, tmpl *Template) *Isolate {
	t.Helper()
	var isos [2]*Isolate
	for k := range isos {
		iso, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = iso.Close(context.Background()) })
		isos[k] = iso
	}
	return isos[1]
}

// TestPrefillClass: a restore of a template in demand that leaves fewer
// than Prefill instances of it pooled makes the runtime pool more in the
// background (a template restored once in a while gets none), and the next
// session's restore takes one: it reads exactly as a restore into a fresh
// mapping (memory byte for byte, globals) and holds nothing of the live
// sessions that caused the prefill.
func TestPrefillClass(t *testing.T) {
	rt, tmpl := prefillTemplate(t, 2)
	ctx := ctxTimeout(t, time.Minute)
	spec := Spec{SessionID: "s", Agent: "a", Module: instModule}
	st0 := ReadPoolStats()
	first, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(ctx)
	rt.fill.wg.Wait()
	if n := poolCount(tmpl.file); n != 0 {
		t.Fatalf("%d instances prefilled after one restore of a template not in demand", n)
	}
	a, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	secret := newSecret(t)
	get(t, a, newMemHost(), "http://x/?s="+secret)
	get(t, first, newMemHost(), "http://x/?s="+secret)
	rt.fill.wg.Wait()
	if n := poolCount(tmpl.file); n != 2 {
		t.Fatalf("%d instances pooled after the first restore, want the 2 prefilled", n)
	}
	if d := ReadPoolStats().Prefills - st0.Prefills; d != 2 {
		t.Fatalf("%d prefills counted, want 2", d)
	}

	b, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if d := ReadPoolStats().InstanceHits - st0.InstanceHits; d != 1 {
		t.Fatalf("the second restore took %d pooled instances, want 1 prefilled", d)
	}
	rt.fill.wg.Wait() // the second restore refills: nothing runs beside the reference
	poolOff = true
	ref, err := rt.Restore(ctx, spec, nil, tmpl)
	poolOff = false
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close(ctx)
	used := len(tmpl.image) + 1<<20
	got, want := reservationBytes(b, used), reservationBytes(ref, used)
	if bytes.Contains(got, []byte(secret)) {
		t.Fatal("a prefilled instance holds the live session's secret")
	}
	if !bytes.Equal(got, want) {
		k := 0
		for k < len(got) && got[k] == want[k] {
			k++
		}
		t.Fatalf("a prefilled instance's memory differs from a fresh restore at byte %d of %d", k, used)
	}
	if g, w := globalsOf(t, b), globalsOf(t, ref); g != w {
		t.Fatalf("prefilled instance's globals %v, a fresh restore's %v", g, w)
	}
	if got := get(t, b, newMemHost(), "http://x/?s=next"); got != "undefined" {
		t.Fatalf("a session in a prefilled instance saw %q", got)
	}
}

// TestPrefillStopsClass: a filler stops when the pool refuses its
// template (closed: nothing of it is pooled) and when the runtime closes
// (Close waits for it; no restore after that starts one). A template's
// file closes only once nothing holds the template, and a filler holds it,
// so the refusal is what a filler can meet.
func TestPrefillStopsClass(t *testing.T) {
	t.Run("template refused", func(t *testing.T) {
		rt, tmpl := prefillTemplate(t, 8)
		ctx := ctxTimeout(t, time.Minute)
		f := tmpl.file
		f.mu.Lock()
		f.closed = true // the pool refuses it, as it does a hot set too large
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			f.closed = false
			f.mu.Unlock()
		}()
		st0 := ReadPoolStats()
		restoreTwice(t, ctx, rt, Spec{Module: instModule}, tmpl)
		rt.fill.wg.Wait()
		if n := poolCount(f); n != 0 {
			t.Fatalf("%d instances of a refused template pooled", n)
		}
		if d := ReadPoolStats().Prefills - st0.Prefills; d != 0 {
			t.Fatalf("%d prefills of a refused template counted", d)
		}
		if !f.noPrefill.Load() {
			t.Fatal("a refused template is not marked: every restore would retry")
		}
		for range 3 {
			if _, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl); err != nil {
				t.Fatal(err)
			}
			rt.fill.mu.Lock()
			running := rt.fill.running
			rt.fill.mu.Unlock()
			if running {
				t.Fatal("a filler started again for a refused template")
			}
		}
	})
	t.Run("runtime closes", func(t *testing.T) {
		rt, tmpl := prefillTemplate(t, 8)
		ctx := ctxTimeout(t, time.Minute)
		restoreTwice(t, ctx, rt, Spec{Module: instModule}, tmpl)
		if err := rt.Close(ctx); err != nil {
			t.Fatal(err)
		}
		rt.fill.mu.Lock()
		running := rt.fill.running
		rt.fill.mu.Unlock()
		if running {
			t.Fatal("a filler runs after Close")
		}
		rt.prefillAfter(rt.restoreModule(), tmpl, 64)
		rt.fill.mu.Lock()
		running = rt.fill.running
		rt.fill.mu.Unlock()
		if running {
			t.Fatal("a filler started after Close")
		}
	})
}

// TestPrefillPoolFullClass: a filler never evicts entries that went into
// the pool less than prefillEvictAge ago (another template in use keeps
// its ready instances), but entries that waited longer make room.
func TestPrefillPoolFullClass(t *testing.T) {
	rt, tmpl := prefillTemplate(t, 2)
	ctx := ctxTimeout(t, time.Minute)
	other := &imageFile{fd: -1}
	fill := func(age time.Duration) {
		resPool.mu.Lock()
		for len(resPool.free) < poolTotal {
			resPool.free = append(resPool.free, &linearMemory{pf: other, admitted: time.Now().Add(-age)})
		}
		resPool.mu.Unlock()
	}
	t.Cleanup(drainPool)
	for _, c := range []struct {
		age  time.Duration
		want int
	}{{0, 0}, {2 * prefillEvictAge, 2}} {
		drainPool()
		fill(c.age)
		tmpl.file.lastRestore.Store(time.Now().UnixNano()) // in demand
		a, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		rt.fill.wg.Wait()
		if n := poolCount(tmpl.file); n != c.want {
			t.Fatalf("pool full of entries %v old: %d prefilled, want %d", c.age, n, c.want)
		}
		_ = a.Close(ctx)
	}
}

// TestCloseWithPooledInstancesClass: a runtime closing while one of its
// instances is pooled and another is live, with the pool full, returns.
// wazero closes the live module under its store's lock; that module's
// reservation going back to the full pool evicted the oldest entry, the
// pooled instance, whose close waited for the same lock forever.
func TestCloseWithPooledInstancesClass(t *testing.T) {
	rt, tmpl := prefillTemplate(t, 0)
	ctx := ctxTimeout(t, time.Minute)
	a, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	_ = b
	_ = a.Close(ctx)
	if poolCount(tmpl.file) != 1 {
		t.Fatal("the closed isolate's instance is not pooled: the test checks nothing")
	}
	other := &imageFile{fd: -1}
	t.Cleanup(drainPool)
	resPool.mu.Lock()
	for len(resPool.free) < poolTotal {
		resPool.free = append(resPool.free, &linearMemory{pf: other, admitted: time.Now()})
	}
	resPool.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- rt.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Runtime.Close deadlocked with a pooled instance of its own and a live one")
	}
	if n := pooledInstances(rt, rt.restoreModule(), tmpl.file, 64<<20); n != 0 {
		t.Fatalf("%d instances of a closed runtime stay pooled", n)
	}
}
