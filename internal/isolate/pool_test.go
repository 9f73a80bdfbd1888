package isolate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"
)

// poolModule keeps the secret of each request everywhere a session's
// bytes can be: a global, many small strings, a large typed array past the
// template's end, and the C stack while it runs.
const poolModule = `
let keep = [];
export default { async fetch(req) {
	const s = new URL(req.url).searchParams.get("s");
	globalThis.secret = s;
	for (let i = 0; i < 2000; i++) keep.push(s + i);
	keep.push(new TextEncoder().encode(s.repeat(60000)));
	keep.push(JSON.parse(JSON.stringify({ s, list: [s, s, s] })));
	return new Response("ok");
} }`

// poolTemplate is a template with an image file (the pooled kind).
func poolTemplate(t *testing.T) (*Runtime, *Template) {
	t.Helper()
	rt := testRuntime(t)
	tmpl, err := rt.Template(context.Background(), Spec{Module: poolModule})
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.file == nil {
		t.Skip("no memfd template")
	}
	rt.restoreModule()
	rt.bare.wg.Wait()
	if rt.restoreModule() == rt.qjs {
		t.Skip("no module without data segments")
	}
	if privatePages(tmpl.image[:4096], 4096) == nil {
		t.Skip("pagemap unreadable: nothing is pooled")
	}
	return rt, tmpl
}

func newSecret(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "S3CRET" + hex.EncodeToString(b)
}

// reservationBytes is the reservation of iso up to n bytes (past the wasm
// memory's size too: what a later grow would hand the guest).
func reservationBytes(iso *Isolate, n int) []byte {
	return iso.vm.lin.buf[:min(n, len(iso.vm.lin.buf))]
}

// TestPoolIsolationClass: a session restored into a reservation another
// session of the same template used reads exactly as one restored into a
// fresh mapping, up to everything the earlier session had grown to, and
// holds none of that session's bytes; across several generations, with
// sessions that hibernate (snapshot), Trim, or fail mid-request.
func TestPoolIsolationClass(t *testing.T) {
	rt, tmpl := poolTemplate(t)
	// A reset that leaves bytes behind can leave the guest looping.
	ctx := ctxTimeout(t, time.Minute)
	spec := Spec{SessionID: "s", Agent: "a", Module: poolModule}
	for gen, mode := range []string{"plain", "snapshot", "trim", "plain", "delta"} {
		var snap []byte
		if mode == "delta" {
			// A delta restore lands in a pooled reservation too.
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
		used := int(a.vm.lin.size)
		if !bytes.Contains(reservationBytes(a, used), []byte(secret)) {
			t.Fatalf("gen %d: the secret is not in the first session's memory; the test checks nothing", gen)
		}
		_ = a.Close(ctx)

		b, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if !b.vm.lin.reused {
			t.Fatalf("gen %d: the second session did not get the pooled reservation", gen)
		}
		// The reference: a restore into a fresh mapping (b holds the
		// only pooled reservation of this template).
		ref, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if ref.vm.lin.reused {
			t.Fatalf("gen %d: reference came from the pool", gen)
		}
		got, want := reservationBytes(b, used), reservationBytes(ref, used)
		if bytes.Contains(got, []byte(secret)) || bytes.Contains(got, []byte(secret[:12])) {
			t.Fatalf("gen %d (%s): a pooled reservation holds the previous session's secret", gen, mode)
		}
		if !bytes.Equal(got, want) {
			k := 0
			for k < len(got) && got[k] == want[k] {
				k++
			}
			t.Fatalf("gen %d (%s): pooled reservation differs from a fresh restore at byte %d of %d", gen, mode, k, used)
		}
		get(t, b, newMemHost(), "http://x/?s=next")
		// Only b's reservation stays pooled, so the next generation
		// reuses a reservation with a longer history.
		_ = ref.Close(ctx)
		poolDrop(tmpl.file)
		_ = b.Close(ctx)
	}
}

// TestPoolConcurrentIsolationClass: sessions of one template restored and
// closed from many goroutines never see each other's secrets (run with
// -race).
func TestPoolConcurrentIsolationClass(t *testing.T) {
	rt, tmpl := poolTemplate(t)
	ctx := ctxTimeout(t, time.Minute)
	var mu sync.Mutex
	var secrets []string
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for n := range 6 {
				secret := newSecret(t)
				iso, err := rt.Restore(ctx, Spec{SessionID: fmt.Sprint(g, n), Module: poolModule}, nil, tmpl)
				if err != nil {
					errs <- err
					return
				}
				mem := reservationBytes(iso, len(iso.vm.lin.buf))
				mu.Lock()
				seen := append([]string(nil), secrets...)
				mu.Unlock()
				for _, s := range seen {
					if bytes.Contains(mem[:min(len(mem), 8<<20)], []byte(s)) {
						errs <- fmt.Errorf("session %d/%d sees secret %s of another", g, n, s)
					}
				}
				mu.Lock()
				secrets = append(secrets, secret)
				mu.Unlock()
				resp, err := iso.Fetch(ctx, Request{Method: "GET", URL: "http://x/?s=" + secret}, newMemHost())
				if err != nil || resp.Status != 200 {
					errs <- fmt.Errorf("fetch: %v %d", err, resp.Status)
				}
				_ = iso.Close(ctx)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestPoolDropsWithTemplate: a template's file closing (its cleanup) unmaps
// its pooled reservations, and a reservation closed after that is not
// pooled.
func TestPoolDropsWithTemplate(t *testing.T) {
	rt, tmpl := poolTemplate(t)
	ctx := context.Background()
	a, err := rt.Restore(ctx, Spec{Module: poolModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	b, err := rt.Restore(ctx, Spec{Module: poolModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close(ctx)
	if poolCount(tmpl.file) != 1 {
		t.Fatalf("pooled %d reservations after one close, want 1", poolCount(tmpl.file))
	}
	f := tmpl.file
	f.close()
	if n := poolCount(f); n != 0 {
		t.Fatalf("%d reservations of a closed template stay pooled", n)
	}
	_ = b.Close(ctx)
	if n := poolCount(f); n != 0 {
		t.Fatalf("a reservation closed after its template was pooled (%d)", n)
	}
}

func poolCount(f *imageFile) int {
	resPool.mu.Lock()
	defer resPool.mu.Unlock()
	n := 0
	for _, m := range resPool.free {
		if m.pf == f {
			n++
		}
	}
	return n
}

// TestPoolKeyClass: a pooled reservation goes only to a session of the
// same template with the same memory limit; another agent's template or
// another limit gets a fresh mapping.
func TestPoolKeyClass(t *testing.T) {
	rt, tmpl := poolTemplate(t)
	ctx := ctxTimeout(t, time.Minute)
	other, err := rt.Template(ctx, Spec{Module: benchModule})
	if err != nil {
		t.Fatal(err)
	}
	a, err := rt.Restore(ctx, Spec{Module: poolModule}, nil, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	get(t, a, newMemHost(), "http://x/?s="+newSecret(t))
	_ = a.Close(ctx)
	for _, c := range []struct {
		name string
		spec Spec
		base *Template
	}{
		{"other template", Spec{Module: benchModule}, other},
		{"other limit", Spec{Module: poolModule, MemoryMiB: 32}, tmpl},
	} {
		iso, err := rt.Restore(ctx, c.spec, nil, c.base)
		if err != nil {
			t.Fatal(err)
		}
		if iso.vm.lin.reused {
			t.Errorf("%s: got a pooled reservation of another template or limit", c.name)
		}
		get(t, iso, newMemHost(), "http://x/?s=x")
		_ = iso.Close(ctx)
	}
	// The first session's reservation, and the other limit's.
	if n := poolCount(tmpl.file); n != 2 {
		t.Fatalf("%d reservations of the template pooled, want 2", n)
	}
}
