package isolate

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// snapPoolModule writes a request's secret (with b set) all over a 1 MiB
// buffer the module allocated before the template was taken, so a request
// after a snapshot dirties pages that were not private before, without
// growing memory: only the private-page map tells the pool's reset that
// they must be reset.
const snapPoolModule = `
const buf = new Uint8Array(1 << 20);
export default { async fetch(req) {
	const q = new URL(req.url).searchParams, s = q.get("s");
	const e = new TextEncoder().encode(s);
	if (q.get("b")) for (let o = 0; o + e.length <= buf.length; o += 4096) buf.set(e, o);
	globalThis.secret = s;
	return new Response("ok");
} }`

// TestPoolAfterSnapshotClass: Close reuses the private-page map of the
// snapshot taken just before it (no second read of /proc/self/pagemap), but
// only while nothing ran in between. A session that snapshots and then
// writes a secret (or is trimmed) before it closes must still leave its
// reservation reset exactly to the template: the next session of the
// template reads as a fresh restore and holds none of the secret. It fails
// when the map is reused after a call.
func TestPoolAfterSnapshotClass(t *testing.T) {
	rt := testRuntime(t)
	rt.PrepareRestores()
	ctx := ctxTimeout(t, time.Minute)
	spec := Spec{SessionID: "s", Agent: "a", Module: snapPoolModule}
	for _, mode := range []string{"snapshot-close", "snapshot-call-close", "snapshot-trim-close", "snapshot-snapshot-close"} {
		t.Run(mode, func(t *testing.T) {
			// A template of its own: the hot pages it learns at the
			// first snapshot, which restores make private, are this
			// mode's.
			tmpl := snapPoolTemplate(t, rt)
			secret := newSecret(t)
			filler := "x" + secret[1:] // same length: the secret's request does not grow memory
			a, err := rt.Restore(ctx, spec, nil, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			get(t, a, newMemHost(), "http://x/?s="+filler)
			get(t, a, newMemHost(), "http://x/?s="+filler)
			if mode == "snapshot-close" || mode == "snapshot-snapshot-close" {
				get(t, a, newMemHost(), "http://x/?b=1&s="+secret)
			}
			if _, err := a.Snapshot(tmpl); err != nil {
				t.Fatal(err)
			}
			size := a.vm.lin.size
			switch mode {
			case "snapshot-call-close", "snapshot-trim-close":
				get(t, a, newMemHost(), "http://x/?b=1&s="+secret)
				if a.vm.lin.size != size {
					t.Skipf("memory grew from %d to %d: the map's length alone would refuse it; the test checks nothing", size, a.vm.lin.size)
				}
				if mode == "snapshot-trim-close" {
					if err := a.Trim(); err != nil {
						t.Fatal(err)
					}
				}
			case "snapshot-snapshot-close":
				if _, err := a.Snapshot(tmpl); err != nil {
					t.Fatal(err)
				}
			}
			if reused := a.snapPriv != nil && a.snapGen == a.gen; reused != (mode == "snapshot-close" || mode == "snapshot-snapshot-close") {
				t.Fatalf("%s: Close would reuse the snapshot's page map: %v", mode, reused)
			}
			used := int(a.vm.lin.size)
			if !bytes.Contains(reservationBytes(a, used), []byte(secret)) {
				t.Fatal("the secret is not in the first session's memory; the test checks nothing")
			}
			_ = a.Close(ctx)

			b, err := rt.Restore(ctx, spec, nil, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = b.Close(ctx) }()
			if !b.vm.lin.reused {
				t.Fatal("the second session did not get the pooled reservation")
			}
			ref, err := rt.Restore(ctx, spec, nil, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ref.Close(ctx); poolDrop(tmpl.file) }()
			got, want := reservationBytes(b, used), reservationBytes(ref, used)
			if bytes.Contains(got, []byte(secret)) {
				t.Fatalf("%s: a pooled reservation holds the previous session's secret", mode)
			}
			if !bytes.Equal(got, want) {
				k := 0
				for k < len(got) && got[k] == want[k] {
					k++
				}
				t.Fatalf("%s: pooled reservation differs from a fresh restore at byte %d of %d", mode, k, used)
			}
			if out := get(t, b, newMemHost(), "http://x/?s=next"); out != "ok" {
				t.Fatalf("pooled session answered %q", out)
			}
		})
	}
}

// snapPoolTemplate is a pooled template of snapPoolModule.
func snapPoolTemplate(t *testing.T, rt *Runtime) *Template {
	t.Helper()
	tmpl, err := rt.Template(context.Background(), Spec{Module: snapPoolModule})
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.file == nil {
		t.Skip("no memfd template")
	}
	if rt.restoreModule() == rt.qjs {
		t.Skip("no module without data segments")
	}
	if privatePages(tmpl.image[:4096], 4096) == nil {
		t.Skip("pagemap unreadable: nothing is pooled")
	}
	return tmpl
}
