package isolate

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// instModule answers with what the previous request of its heap left in a
// global (a fresh session: "undefined"), runs loops (the yield countdown
// moves), and on ?grow allocates past the template's memory, on ?spin
// loops until stopped.
const instModule = `
export default { async fetch(req) {
	const u = new URL(req.url);
	const prev = String(globalThis.secret);
	globalThis.secret = u.searchParams.get("s");
	let n = 0;
	for (let i = 0; i < 30000; i++) n += i;
	if (u.searchParams.has("grow")) globalThis.big = new Uint8Array(8 << 20).fill(7);
	if (u.searchParams.has("spin")) for (;;) n++;
	return new Response(prev);
} }`

// instTemplate is poolTemplate for instModule, with the instance pool on.
func instTemplate(t *testing.T) (*Runtime, *Template) {
	t.Helper()
	return instTemplateOn(t, testRuntime(t))
}

// instTemplateOn is instTemplate on rt.
func instTemplateOn(t *testing.T, rt *Runtime) (*Runtime, *Template) {
	t.Helper()
	if !rt.instPoolable {
		t.Skip("the engine's instances are not poolable")
	}
	tmpl, err := rt.Template(context.Background(), Spec{Module: instModule})
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.file == nil {
		t.Skip("no memfd template")
	}
	rt.PrepareRestores()
	if rt.restoreModule() == rt.qjs {
		t.Skip("no module without data segments")
	}
	if privatePages(tmpl.image[:4096], 4096) == nil {
		t.Skip("pagemap unreadable: nothing is pooled")
	}
	return rt, tmpl
}

// globalsOf reads an isolate's mutable globals: stack pointer, stop, tick.
func globalsOf(t *testing.T, iso *Isolate) [3]uint64 {
	t.Helper()
	var g [3]uint64
	g[0] = iso.vm.mod.ExportedGlobal("__stack_pointer").Get()
	if iso.vm.stop != nil {
		g[1] = iso.vm.stop.Get()
	}
	if iso.vm.tick != nil {
		g[2] = iso.vm.tick.Get()
	}
	return g
}

// TestInstancePoolIsolationClass: a session restored into an instance
// another session of the template used (no instantiation) reads exactly as
// one restored into a fresh instance: memory byte for byte up to the
// reservation the earlier one touched, the same mutable globals, and none
// of the earlier session's secret; after a plain close, a snapshot, a Trim
// and a delta restore. A session that grew its memory, or died (a limit),
// does not hand its instance on.
func TestInstancePoolIsolationClass(t *testing.T) {
	rt, tmpl := instTemplate(t)
	ctx := ctxTimeout(t, time.Minute)
	spec := Spec{SessionID: "s", Agent: "a", Module: instModule}
	for gen, mode := range []string{"plain", "snapshot", "trim", "delta", "plain"} {
		var snap []byte
		if mode == "delta" {
			iso, err := rt.Restore(ctx, spec, nil, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			get(t, iso, newMemHost(), "http://x/?s=harmless")
			if snap, err = iso.Snapshot(tmpl); err != nil {
				t.Fatal(err)
			}
			_ = iso.Close(ctx)
		}
		secret := newSecret(t)
		a, err := rt.Restore(ctx, spec, snap, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		get(t, a, newMemHost(), "http://x/?s="+secret)
		switch mode {
		case "snapshot", "delta":
			if _, err := a.Snapshot(tmpl); err != nil {
				t.Fatal(err)
			}
		case "trim":
			if err := a.Trim(); err != nil {
				t.Fatal(err)
			}
		}
		if int(a.vm.mem.Size()) != len(tmpl.image) {
			t.Fatalf("gen %d: the session grew its memory (%d > %d): the test checks nothing", gen, a.vm.mem.Size(), len(tmpl.image))
		}
		// The session did not grow, so nothing past its size was touched;
		// a MiB more is compared anyway.
		used := len(tmpl.image) + 1<<20
		if !bytes.Contains(reservationBytes(a, used), []byte(secret)) {
			t.Fatalf("gen %d: the secret is not in the first session's memory; the test checks nothing", gen)
		}
		if globalsOf(t, a)[2] == yieldEvery && a.vm.tick != nil {
			t.Fatalf("gen %d: the loops did not move the yield countdown; the test checks nothing", gen)
		}
		prevVM := a.vm
		_ = a.Close(ctx)

		b, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if b.vm != prevVM {
			t.Fatalf("gen %d (%s): the second session did not get the pooled instance", gen, mode)
		}
		ref, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if ref.vm == prevVM {
			t.Fatalf("gen %d: reference is the pooled instance", gen)
		}
		got, want := reservationBytes(b, used), reservationBytes(ref, used)
		if bytes.Contains(got, []byte(secret)) || bytes.Contains(got, []byte(secret[:12])) {
			t.Fatalf("gen %d (%s): a pooled instance holds the previous session's secret", gen, mode)
		}
		if !bytes.Equal(got, want) {
			k := 0
			for k < len(got) && got[k] == want[k] {
				k++
			}
			t.Fatalf("gen %d (%s): pooled instance's memory differs from a fresh restore at byte %d of %d", gen, mode, k, used)
		}
		if g, w := globalsOf(t, b), globalsOf(t, ref); g != w {
			t.Fatalf("gen %d (%s): pooled instance's globals %v, a fresh restore's %v", gen, mode, g, w)
		}
		if b.vm.mem.Size() != ref.vm.mem.Size() {
			t.Fatalf("gen %d: memory size %d, fresh %d", gen, b.vm.mem.Size(), ref.vm.mem.Size())
		}
		if got := get(t, b, newMemHost(), "http://x/?s=next"); got != "null" && got != "undefined" {
			t.Fatalf("gen %d (%s): the next session saw %q", gen, mode, got)
		}
		_ = ref.Close(ctx)
		_ = b.Close(ctx)
	}
}

// TestInstancePoolRefusesClass: an instance whose memory grew past the
// template's size, or that a limit left dead, is not pooled whole; the
// next session then instantiates (and sees a fresh memory size).
func TestInstancePoolRefusesClass(t *testing.T) {
	rt, tmpl := instTemplate(t)
	ctx := ctxTimeout(t, time.Minute)
	spec := Spec{SessionID: "s", Agent: "a", Module: instModule}
	for _, mode := range []string{"grow", "spin"} {
		a, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		switch mode {
		case "grow":
			get(t, a, newMemHost(), "http://x/?s=x&grow=1")
			if int(a.vm.mem.Size()) <= len(tmpl.image) {
				t.Fatal("the session did not grow its memory; the test checks nothing")
			}
		case "spin":
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err := a.Fetch(cctx, Request{Method: "GET", URL: "http://x/?s=x&spin=1"}, newMemHost())
			cancel()
			if !errors.Is(err, ErrTimeout) || a.Err() == nil {
				t.Fatalf("spin: %v (dead: %v); the test checks nothing", err, a.Err())
			}
		}
		prevVM := a.vm
		_ = a.Close(ctx)
		b, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if b.vm == prevVM {
			t.Fatalf("%s: the instance was pooled", mode)
		}
		if int(b.vm.mem.Size()) != len(tmpl.image) {
			t.Fatalf("%s: the next session's memory is %d bytes, the template's %d", mode, b.vm.mem.Size(), len(tmpl.image))
		}
		if got := get(t, b, newMemHost(), "http://x/?s=y"); got != "null" && got != "undefined" {
			t.Fatalf("%s: the next session saw %q", mode, got)
		}
		_ = b.Close(ctx)
	}
}

// TestInstancePoolKeyClass: a pooled instance goes only to a restore of
// the same template, memory limit and runtime.
func TestInstancePoolKeyClass(t *testing.T) {
	rt, tmpl := instTemplate(t)
	ctx := ctxTimeout(t, time.Minute)
	rt2, err := NewRuntime(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close(ctx) //nolint:errcheck
	rt2.PrepareRestores()
	other, err := rt.Template(ctx, Spec{Module: benchModule})
	if err != nil {
		t.Fatal(err)
	}
	a, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	get(t, a, newMemHost(), "http://x/?s="+newSecret(t))
	pooled := a.vm
	_ = a.Close(ctx)
	for _, c := range []struct {
		name string
		rt   *Runtime
		spec Spec
		base *Template
	}{
		{"other template", rt, Spec{Module: benchModule}, other},
		{"other limit", rt, Spec{Module: instModule, MemoryMiB: 32}, tmpl},
		{"other runtime", rt2, Spec{Module: instModule}, tmpl},
	} {
		iso, err := c.rt.Restore(ctx, c.spec, nil, c.base)
		if err != nil {
			t.Fatal(err)
		}
		if iso.vm == pooled {
			t.Errorf("%s: got the pooled instance", c.name)
		}
		get(t, iso, newMemHost(), "http://x/?s=x")
		_ = iso.Close(ctx)
	}
	b, err := rt.Restore(ctx, Spec{Module: instModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if b.vm != pooled {
		t.Fatal("the pooled instance is gone: the test checks nothing")
	}
	_ = b.Close(ctx)
	// A runtime's Close takes its pooled instances out of the pool (their
	// reservations are unmapped, not handed on).
	before := poolCount(tmpl.file)
	var inst2 *vm
	resPool.mu.Lock()
	for _, m := range resPool.free {
		if m.pf == tmpl.file && m.instRT == rt2 {
			inst2 = m.inst
		}
	}
	resPool.mu.Unlock()
	if inst2 == nil {
		t.Fatal("the other runtime pooled no instance: the test checks nothing")
	}
	if err := rt2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := poolCount(tmpl.file); n != before-1 {
		t.Fatalf("%d entries of the template pooled after the other runtime closed, want %d", n, before-1)
	}
}

// TestInstancePoolModuleClass: only a module whose instances the pool can
// reset is pooled whole: no mutable global the pool does not reset, no
// imported global, no code that writes a table. The engine itself passes.
func TestInstancePoolModuleClass(t *testing.T) {
	head := []byte("\x00asm\x01\x00\x00\x00")
	mod := func(secs ...[]byte) []byte {
		b := append([]byte(nil), head...)
		for _, s := range secs {
			b = append(b, s...)
		}
		return b
	}
	global := []byte{6, 6, 1, 0x7f, 1, 0x41, 0, 0x0b} // (global (mut i32) (i32.const 0))
	constGlobal := []byte{6, 6, 1, 0x7f, 0, 0x41, 0, 0x0b}
	export := func(name string) []byte {
		body := append([]byte{1, byte(len(name))}, name...)
		body = append(body, 3, 0)
		return append([]byte{7, byte(len(body))}, body...)
	}
	types := []byte{1, 4, 1, 0x60, 0, 0} // (type (func))
	funcs := []byte{3, 2, 1, 0}          // one function of type 0
	table := []byte{4, 4, 1, 0x70, 0, 1} // (table 1 funcref)
	code := func(body ...byte) []byte {
		fn := append([]byte{0}, body...) // no locals
		sec := append([]byte{1, byte(len(fn))}, fn...)
		return append([]byte{10, byte(len(sec))}, sec...)
	}
	importGlobal := []byte{2, 9, 1, 1, 'e', 1, 'g', 3, 0x7f, 1, 0} // (import "e" "g" (global (mut i32)))
	for _, c := range []struct {
		name string
		wasm []byte
		want bool
	}{
		{"no globals", mod(), true},
		{"stack pointer", mod(global, export("__stack_pointer")), true},
		{"stop flag", mod(global, export(stopGlobalName)), true},
		{"unexported mutable global", mod(global), false},
		{"mutable global under another name", mod(global, export("counter")), false},
		{"constant global", mod(constGlobal), true},
		{"imported mutable global", mod(importGlobal), false},
		{"code that reads", mod(types, funcs, table, code(0x41, 0, 0x1a, 0x0b)), true},
		{"table.set", mod(types, funcs, table, code(0x41, 0, 0xd0, 0x70, 0x26, 0, 0x0b)), false},
		{"table.grow", mod(types, funcs, table, code(0xd0, 0x70, 0x41, 1, 0xfc, 15, 0, 0x1a, 0x0b)), false},
		{"table.fill", mod(types, funcs, table, code(0x41, 0, 0xd0, 0x70, 0x41, 1, 0xfc, 17, 0, 0x0b)), false},
		{"table.copy", mod(types, funcs, table, code(0x41, 0, 0x41, 0, 0x41, 0, 0xfc, 14, 0, 0, 0x0b)), false},
		{"truncated", head[:6], false},
	} {
		if got := poolableModule(c.wasm); got != c.want {
			t.Errorf("%s: poolable %v, want %v", c.name, got, c.want)
		}
	}
	rt := testRuntime(t)
	if !poolableModule(rt.code) || !rt.instPoolable {
		t.Error("the engine's instances are not poolable")
	}
}
