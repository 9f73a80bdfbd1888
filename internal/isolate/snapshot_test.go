package isolate

import (
	"context"
	"errors"
	"testing"
)

const counterModule = `
let n = 0;
const pending = [];
export default {
	async fetch(req) {
		n++;
		return new Response(String(n));
	}
}`

func TestSnapshotRoundTrip(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	h := newMemHost()
	iso := newIsolate(t, counterModule)
	for want := 1; want <= 3; want++ {
		if got := get(t, iso, h, "http://x/"); got != itoa(want) {
			t.Fatalf("fetch %d = %q", want, got)
		}
	}
	snap, err := iso.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full snapshot: %d bytes (memory %d)", len(snap), iso.MemoryBytes())
	_ = iso.Close(ctx)

	restored, err := rt.Restore(ctx, Spec{SessionID: "s2", Module: counterModule}, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close(ctx)
	if got := get(t, restored, h, "http://x/"); got != "4" {
		t.Fatalf("after restore: %q, want 4", got)
	}
	// And again, from a snapshot of the restored isolate.
	snap2, err := restored.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := rt.Restore(ctx, Spec{Module: counterModule}, snap2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	if got := get(t, again, h, "http://x/"); got != "5" {
		t.Fatalf("after second restore: %q, want 5", got)
	}
}

func TestTemplateDelta(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Agent: "counter", Module: counterModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	h := newMemHost()
	spec.SessionID = "a"
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(ctx)
	for i := 0; i < 5; i++ {
		get(t, iso, h, "http://x/")
	}
	full, err := iso.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	delta, err := iso.Snapshot(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("template %d bytes raw, %d marshaled; session full %d, delta %d", tmpl.Size(), len(tmpl.Marshal(rt)), len(full), len(delta))
	if len(delta) >= len(full) {
		t.Fatalf("delta %d not smaller than full %d", len(delta), len(full))
	}
	// Restore the delta onto a template loaded from its marshaled form.
	tmpl2, err := rt.LoadTemplate(tmpl.Marshal(rt))
	if err != nil {
		t.Fatal(err)
	}
	if tmpl2.ID() != tmpl.ID() {
		t.Fatalf("template id changed across marshal: %s vs %s", tmpl2.ID(), tmpl.ID())
	}
	spec.SessionID = "b"
	r2, err := rt.Restore(ctx, spec, delta, tmpl2)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	if got := get(t, r2, h, "http://x/"); got != "6" {
		t.Fatalf("after delta restore: %q, want 6", got)
	}
	// A delta needs its own template.
	other, err := rt.Template(ctx, Spec{Module: `export default { fetch() { return new Response("other") } }`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Restore(ctx, spec, delta, other); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("restore onto wrong template: %v, want ErrBadSnapshot", err)
	}
	if _, err := rt.Restore(ctx, spec, delta, nil); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("restore delta without template: %v, want ErrBadSnapshot", err)
	}
	if _, err := rt.Restore(ctx, spec, []byte("garbage"), nil); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("restore garbage: %v, want ErrBadSnapshot", err)
	}
	// Two sessions from one template are independent.
	s1, _ := rt.Restore(ctx, spec, nil, tmpl)
	s2, _ := rt.Restore(ctx, spec, nil, tmpl)
	defer s1.Close(ctx)
	defer s2.Close(ctx)
	get(t, s1, h, "http://x/")
	if got := get(t, s1, h, "http://x/"); got != "2" {
		t.Fatalf("s1 = %q", got)
	}
	if got := get(t, s2, h, "http://x/"); got != "1" {
		t.Fatalf("s2 = %q", got)
	}
}

func TestSnapshotSessionIdentity(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	mod := `export default { fetch(req, env) { return new Response(env.session.id + "/" + env.session.agent + "/" + env.GREETING) } }`
	tmpl, err := rt.Template(ctx, Spec{Agent: "ag", Module: mod, Env: map[string]string{"GREETING": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	iso, err := rt.Restore(ctx, Spec{SessionID: "sess-9", Agent: "ag", Module: mod, Env: map[string]string{"GREETING": "hey"}}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(ctx)
	if got := get(t, iso, newMemHost(), "http://x/"); got != "sess-9/ag/hey" {
		t.Fatalf("got %q", got)
	}
}

func TestSnapshotPendingPromise(t *testing.T) {
	// A promise created in one call and resolved in a later call, across a
	// snapshot: the job queue and closures live in the heap.
	rt := testRuntime(t)
	ctx := context.Background()
	mod := `
let resolve, result = "none";
new Promise(r => { resolve = r; }).then(v => { result = v; });
export default { async fetch(req) {
	const u = new URL(req.url);
	if (u.pathname === "/resolve") { resolve("resolved"); await null; }
	return new Response(result);
} }`
	iso := newIsolate(t, mod)
	h := newMemHost()
	if got := get(t, iso, h, "http://x/"); got != "none" {
		t.Fatalf("got %q", got)
	}
	snap, err := iso.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rt.Restore(ctx, Spec{Module: mod}, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if got := get(t, r, h, "http://x/resolve"); got != "resolved" {
		t.Fatalf("got %q", got)
	}
}

func itoa(n int) string {
	return string(rune('0' + n))
}
