package isolate

import (
	"context"
	"strconv"
	"testing"
)

// randomModule draws from Math.random at module top level, as libraries that
// make an instance id at import do, so the template image holds a partly
// used generator.
const randomModule = `
const bootId = Math.random();
export default { fetch() { return new Response(String(Math.random())); } }`

// TestRandomPerActivationClass checks that Math.random starts from fresh
// host randomness on every activation: sessions restored from one template,
// and isolates restored from one snapshot (a session restored twice from
// its last snapshot, on a crash or on another node), never repeat their
// first values.
func TestRandomPerActivationClass(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Agent: "rnd", Module: randomModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	h := newMemHost()
	seen := map[string]string{}
	first := func(what string, iso *Isolate) {
		t.Helper()
		v := get(t, iso, h, "http://x/")
		if prev, dup := seen[v]; dup {
			t.Fatalf("%s: first Math.random() %s repeats %s", what, v, prev)
		}
		seen[v] = what
	}
	var snap []byte
	for i := range 200 {
		spec.SessionID = strconv.Itoa(i)
		iso, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		first("template session "+spec.SessionID, iso)
		if i == 0 {
			if snap, err = iso.Snapshot(tmpl); err != nil {
				t.Fatal(err)
			}
		}
		_ = iso.Close(ctx)
	}
	for i := range 50 {
		iso, err := rt.Restore(ctx, spec, snap, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		first("restore "+strconv.Itoa(i)+" of one snapshot", iso)
		_ = iso.Close(ctx)
	}
	// A fresh isolate (New, as a template build runs) draws fresh values too.
	for i := range 5 {
		iso, err := rt.New(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		first("new isolate "+strconv.Itoa(i), iso)
		_ = iso.Close(ctx)
	}
}
