package isolate

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// privDiffModule keeps whatever a request asks for: byte arrays that grow
// the heap (past the template's end with big ones), deep recursion that
// moves the stack, and a counter.
const privDiffModule = `
let keep = [], n = 0;
const deep = (k) => k === 0 ? 0 : 1 + deep(k - 1);
export default { async fetch(req, env) {
	const u = new URL(req.url);
	n++;
	const kb = Number(u.searchParams.get("kb") || 0);
	if (kb) { // one byte written per page: pages made private that differ a little
		const b = new Uint8Array(kb * 1024);
		for (let k = 0; k < b.length; k += 4096) b[k] = (n & 255) || 1;
		keep.push(b);
	}
	if (u.searchParams.get("drop")) keep = [];
	if (u.searchParams.get("deep")) deep(300);
	return new Response(String(n) + ":" + keep.length);
} }`

// TestSnapshotPrivatePagesClass: a snapshot that compares only the pages
// the kernel reports as private copies (or swapped) is byte for byte the
// snapshot that compares every page, across the states an isolate mapped
// from its template can be in: fresh, after small and large allocations
// (past the template's end), deep stacks, dropped objects, Trim, and a
// restore from a delta. Restoring it gives the same heap back.
func TestSnapshotPrivatePagesClass(t *testing.T) {
	if os.Getpagesize() != snapPage {
		t.Skip("page size is not 4 KiB")
	}
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Module: privDiffModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.file == nil {
		t.Skip("no memfd: templates are copied, not mapped")
	}
	h := newMemHost()
	steps := []struct {
		name string
		urls []string
		trim bool
	}{
		{"fresh", nil, false},
		{"one request", []string{"http://x/"}, false},
		{"small allocations", []string{"http://x/?kb=1", "http://x/?kb=3", "http://x/?kb=2"}, false},
		{"deep stack", []string{"http://x/?deep=1"}, false},
		{"past the template's end", []string{"http://x/?kb=1024", "http://x/?kb=512"}, false},
		{"dropped and trimmed", []string{"http://x/?drop=1"}, true},
		{"after trim", []string{"http://x/?kb=8"}, false},
	}
	iso, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // round 1 runs on an isolate restored from a delta
		for _, s := range steps {
			for _, u := range s.urls {
				get(t, iso, h, u)
			}
			if s.trim {
				if err := iso.Trim(); err != nil {
					t.Fatal(err)
				}
			}
			mem, _ := iso.vm.mem.Read(0, iso.vm.mem.Size())
			dead := int(iso.vm.st.StackPointer)
			priv := iso.vm.lin.private(mem, tmpl)
			if priv == nil {
				t.Fatalf("round %d, %s: private pages unknown for a mapped isolate", round, s.name)
			}
			if s.name == "past the template's end" && len(mem) <= len(tmpl.image) {
				t.Fatalf("round %d: memory %d bytes did not grow past the template's %d", round, len(mem), len(tmpl.image))
			}
			skipped := 0
			for _, p := range priv {
				if !p {
					skipped++
				}
			}
			got, want := diffPages(nil, mem, tmpl.image, dead, int(tmpl.st.StackPointer), priv), diffImage(nil, mem, tmpl.image, dead)
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d, %s: diff over private pages (%d bytes) differs from the full diff (%d bytes)", round, s.name, len(got), len(want))
			}
			if skipped == 0 {
				t.Fatalf("round %d, %s: no page skipped: the test does not exercise the skip", round, s.name)
			}
		}
		snap, err := iso.Snapshot(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		before := get(t, iso, h, "http://x/")
		_ = iso.Close(ctx)
		if iso, err = rt.Restore(ctx, spec, snap, tmpl); err != nil {
			t.Fatal(err)
		}
		if after := get(t, iso, h, "http://x/"); after != before {
			t.Fatalf("round %d: restored session answers %q, want %q", round, after, before)
		}
	}
	_ = iso.Close(ctx)
}

// TestSnapshotPrivatePagesNotMapped: an isolate not mapped from the
// template it is diffed against (booted from source, or diffed against
// another template) compares every page.
func TestSnapshotPrivatePagesNotMapped(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Module: privDiffModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rt.Template(ctx, Spec{Module: benchModule})
	if err != nil {
		t.Fatal(err)
	}
	// Booted from source: no template base, so Snapshot compares every
	// page; the snapshot restores to the same session.
	iso, err := rt.New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(ctx)
	if iso.base != nil {
		t.Fatal("a booted isolate claims a template base")
	}
	get(t, iso, newMemHost(), "http://x/?kb=1")
	restoresSame(t, rt, spec, iso, tmpl, "booted isolate restored")
	mem, _ := iso.vm.mem.Read(0, iso.vm.mem.Size())
	if iso.vm.lin.private(mem[:len(mem)/2], tmpl) != nil {
		t.Fatal("private pages given for a part of memory")
	}
	iso2, err := rt.Restore(ctx, spec, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	defer iso2.Close(ctx)
	get(t, iso2, newMemHost(), "http://x/?kb=2")
	// Diffed against another template: full compare, and restoring the
	// snapshot against that template gives the same session back.
	restoresSame(t, rt, spec, iso2, other, "restored against another template")
}

// restoresSame snapshots iso against base, restores the snapshot against
// base and fails t unless the restored isolate answers as iso does.
func restoresSame(t *testing.T, rt *Runtime, spec Spec, iso *Isolate, base *Template, what string) {
	t.Helper()
	ctx := context.Background()
	snap, err := iso.Snapshot(base)
	if err != nil {
		t.Fatal(err)
	}
	want := get(t, iso, newMemHost(), "http://x/")
	restored, err := rt.Restore(ctx, spec, snap, base)
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close(ctx)
	if got := get(t, restored, newMemHost(), "http://x/"); got != want {
		t.Fatalf("%s: %q, want %q", what, got, want)
	}
}
