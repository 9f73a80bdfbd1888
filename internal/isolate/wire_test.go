package isolate

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestIncomingRequestHeaders(t *testing.T) {
	iso := newIsolate(t, `export default { async fetch(req) {
		const h = req.headers;
		return new Response([req.method, req.url, h.get("x-multi"), h.get("Content-Type"), h.has("absent"), [...h.keys()].join(), req.signal.aborted].join("|"));
	} }`)
	resp, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "PATCH", URL: "http://x/a?b=c",
		Headers: [][2]string{{"X-Multi", "1"}, {"Content-Type", "text/plain"}, {"x-multi", "2"}}}, newMemHost())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.Body), "PATCH|http://x/a?b=c|1, 2|text/plain|false|content-type,x-multi|false"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{URL: "http://x/", Headers: [][2]string{{"a", "b\x00c"}}}, newMemHost()); !errors.Is(err, errNUL) {
		t.Fatalf("NUL header: %v", err)
	}
	if iso.Err() != nil {
		t.Fatal("a rejected request killed the isolate")
	}
}

func TestResponseWire(t *testing.T) {
	iso := newIsolate(t, `export default { fetch(req) {
		const u = new URL(req.url);
		if (u.pathname === "/cookies") {
			const h = new Headers({"X-A": "1"});
			h.append("Set-Cookie", "a=1"); h.append("Set-Cookie", "b=2"); h.append("x-a", "2");
			return new Response(null, {status: 204, statusText: "No\u0000Content", headers: h});
		}
		if (u.pathname === "/bytes") return new Response(new Uint8Array([0, 1, 2]));
		if (u.pathname === "/utf8") return new Response("é\u0000€");
		if (u.pathname === "/waituntil") return new Response("w");
		return null;
	} }`)
	h := newMemHost()
	resp, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{URL: "http://x/cookies"}, h)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 204 || resp.StatusText != "NoContent" || len(resp.Body) != 0 {
		t.Fatalf("resp = %+v", resp)
	}
	var cookies []string
	for _, kv := range resp.Headers {
		if kv[0] == "set-cookie" {
			cookies = append(cookies, kv[1])
		}
	}
	if resp.Header("x-a") != "1, 2" || strings.Join(cookies, ";") != "a=1;b=2" {
		t.Fatalf("headers = %q", resp.Headers)
	}
	resp, err = iso.Fetch(ctxTimeout(t, 5*time.Second), Request{URL: "http://x/bytes"}, h)
	if err != nil || !bytes.Equal(resp.Body, []byte{0, 1, 2}) {
		t.Fatalf("bytes: %v %v", resp.Body, err)
	}
	resp, err = iso.Fetch(ctxTimeout(t, 5*time.Second), Request{URL: "http://x/utf8"}, h)
	if err != nil || string(resp.Body) != "é\x00€" {
		t.Fatalf("utf8: %q %v", resp.Body, err)
	}
	var je *JSError
	if _, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{URL: "http://x/null"}, h); !errors.As(err, &je) || je.Name != "TypeError" {
		t.Fatalf("null response: %v", err)
	}
}

func TestTrim(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Module: counterModule}
	tmpl, err := rt.Template(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, fromTemplate := range []bool{true, false} {
		var iso *Isolate
		if fromTemplate {
			iso, err = rt.Restore(ctx, spec, nil, tmpl)
		} else {
			iso, err = rt.New(ctx, spec)
		}
		if err != nil {
			t.Fatal(err)
		}
		h := newMemHost()
		for want := 1; want <= 3; want++ {
			if got := get(t, iso, h, "http://x/"); got != itoa(want) {
				t.Fatalf("fetch %d = %q", want, got)
			}
			if err := iso.Trim(); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := iso.Snapshot(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		r, err := rt.Restore(ctx, spec, snap, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := get(t, r, h, "http://x/"); got != "4" {
			t.Fatalf("restored after trim: %q", got)
		}
		_ = r.Close(ctx)
		_ = iso.Close(ctx)
		if err := iso.Trim(); err != nil {
			t.Fatalf("trim after close: %v", err)
		}
	}
}

// TestSnapshotV1 restores a snapshot in the page-bitmap format of version 1.
func TestSnapshotV1(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Module: counterModule}
	iso := newIsolate(t, counterModule)
	get(t, iso, newMemHost(), "http://x/")
	get(t, iso, newMemHost(), "http://x/")
	iso.mu.Lock()
	img, st := iso.canonicalImage(), iso.vm.st
	iso.mu.Unlock()
	npages := len(img) / snapPage
	raw := make([]byte, 16+vmStateSize+64+(npages+7)/8)
	copy(raw, snapMagic)
	raw[4] = snapV1
	binary.LittleEndian.PutUint32(raw[8:], uint32(len(img)))
	binary.LittleEndian.PutUint32(raw[12:], snapPage)
	st.marshal(raw[16:])
	copy(raw[16+vmStateSize:], rt.wasmHash[:])
	bitmap := raw[16+vmStateSize+64:]
	var zero [snapPage]byte
	var pages []byte
	for p := range npages {
		if pg := img[p*snapPage : (p+1)*snapPage]; !bytes.Equal(pg, zero[:]) {
			bitmap[p/8] |= 1 << (p % 8)
			pages = append(pages, pg...)
		}
	}
	raw = append(raw, pages...)
	r, err := rt.Restore(ctx, spec, rt.enc.EncodeAll(raw, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if got := get(t, r, newMemHost(), "http://x/"); got != "3" {
		t.Fatalf("v1 restore: %q", got)
	}
}

// TestTemplateCollected: an isolate mapped from a template keeps working
// after the caller drops the template and the GC runs its cleanup.
func TestTemplateCollected(t *testing.T) {
	rt := testRuntime(t)
	ctx := context.Background()
	spec := Spec{Module: counterModule}
	iso := func() *Isolate {
		tmpl, err := rt.Template(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		iso, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		return iso
	}()
	defer iso.Close(ctx)
	for range 3 {
		runtime.GC()
	}
	if got := get(t, iso, newMemHost(), "http://x/"); got != "1" {
		t.Fatalf("got %q", got)
	}
	if err := iso.Trim(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, iso, newMemHost(), "http://x/"); got != "2" {
		t.Fatalf("got %q", got)
	}
}
