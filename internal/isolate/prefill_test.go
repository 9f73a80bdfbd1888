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
	return rt, tmpl
}

// TestPrefillClass: a restore that leaves fewer than Prefill instances of
// its template pooled makes the runtime pool more in the background, and
// the next session's restore takes one: it reads exactly as a restore into
// a fresh mapping (memory byte for byte, globals) and holds nothing of the
// live session that caused the prefill.
func TestPrefillClass(t *testing.T) {
	rt, tmpl := prefillTemplate(t, 2)
	ctx := ctxTimeout(t, time.Minute)
	spec := Spec{SessionID: "s", Agent: "a", Module: instModule}
	st0 := ReadPoolStats()
	a, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	secret := newSecret(t)
	get(t, a, newMemHost(), "http://x/?s="+secret)
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
		f.closed = true
		f.mu.Unlock()
		st0 := ReadPoolStats()
		a, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		rt.fill.wg.Wait()
		if n := poolCount(f); n != 0 {
			t.Fatalf("%d instances of a closed template pooled", n)
		}
		if d := ReadPoolStats().Prefills - st0.Prefills; d != 0 {
			t.Fatalf("%d prefills of a closed template counted", d)
		}
		_ = a.Close(ctx)
		f.mu.Lock()
		f.closed = false
		f.mu.Unlock()
	})
	t.Run("runtime closes", func(t *testing.T) {
		rt, tmpl := prefillTemplate(t, 8)
		ctx := ctxTimeout(t, time.Minute)
		a, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		_ = a.Close(ctx)
		if err := rt.Close(ctx); err != nil {
			t.Fatal(err)
		}
		rt.fill.mu.Lock()
		running := len(rt.fill.running)
		rt.fill.mu.Unlock()
		if running != 0 {
			t.Fatalf("%d fillers run after Close", running)
		}
		rt.prefillAfter(rt.restoreModule(), tmpl, 64)
		rt.fill.mu.Lock()
		running = len(rt.fill.running)
		rt.fill.mu.Unlock()
		if running != 0 {
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
	t.Cleanup(func() { poolDrop(other) })
	for _, c := range []struct {
		age  time.Duration
		want int
	}{{0, 0}, {2 * prefillEvictAge, 2}} {
		poolDrop(other)
		poolDrop(tmpl.file)
		fill(c.age)
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
