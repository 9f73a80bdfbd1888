package isolate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStreamsAPIClass: the stream classes (web-streams-polyfill, bundled
// into streams.js) and ours on top of them behave as on Workers, whether
// the library was compiled into the template (the source names a stream
// class) or on first use (it does not).
func TestStreamsAPIClass(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"readable read", `(async () => { const r = new ReadableStream({ start(c) { c.enqueue("a"); c.enqueue("b"); c.close(); } }).getReader(); let s = ""; for (;;) { const { done, value } = await r.read(); if (done) break; s += value; } return s })()`, "ab"},
		{"readable async iterator", `(async () => { let s = ""; for await (const x of new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); } })) s += x; return s })()`, "12"},
		{"pull backpressure", `(async () => { let n = 0; const r = new ReadableStream({ pull(c) { n++; if (n > 3) c.close(); else c.enqueue(n); } }, { highWaterMark: 0 }); const rd = r.getReader(); await rd.read(); return String(n) })()`, "1"},
		{"transform", `(async () => { const t = new TransformStream({ transform(ch, c) { c.enqueue(String(ch).toUpperCase()); } }); const w = t.writable.getWriter(); w.write("ab"); w.close(); return (await t.readable.getReader().read()).value })()`, "AB"},
		{"pipeThrough text encode decode", `(async () => { const r = new ReadableStream({ start(c) { c.enqueue("h\u00e9"); c.enqueue("llo \ud83d"); c.enqueue("\ude00"); c.close(); } }); return await new Response(r.pipeThrough(new TextEncoderStream())).text() })()`, "héllo 😀"},
		{"text decoder split sequence", `(async () => { const b = new TextEncoder().encode("é😀x"); const r = new ReadableStream({ start(c) { for (const x of b) c.enqueue(new Uint8Array([x])); c.close(); } }); let s = ""; for await (const x of r.pipeThrough(new TextDecoderStream())) s += x; return s })()`, "é😀x"},
		{"writable sink", `(async () => { let got = []; const w = new WritableStream({ write(ch) { got.push(ch); } }); const wr = w.getWriter(); await wr.write("x"); await wr.write("y"); await wr.close(); return got.join("") })()`, "xy"},
		{"gzip round trip", `(async () => { const s = new Response("hello hello hello").body.pipeThrough(new CompressionStream("gzip")).pipeThrough(new DecompressionStream("gzip")); return await new Response(s).text() })()`, "hello hello hello"},
		{"deflate and raw", `(async () => { let out = []; for (const f of ["deflate", "deflate-raw"]) { const s = new Response("abc").body.pipeThrough(new CompressionStream(f)).pipeThrough(new DecompressionStream(f)); out.push(await new Response(s).text()); } return out.join() })()`, "abc,abc"},
		{"gzip magic", `(async () => { const b = new Uint8Array(await new Response(new Response("x").body.pipeThrough(new CompressionStream("gzip"))).arrayBuffer()); return b[0] + "," + b[1] })()`, "31,139"},
		{"bad format", `(() => { try { new CompressionStream("brotli"); return "ok" } catch (e) { return e.name } })()`, "TypeError"},
		{"corrupt input", `(async () => { try { await new Response(new Response("not gzip").body.pipeThrough(new DecompressionStream("gzip"))).text(); return "ok" } catch (e) { return e.name } })()`, "TypeError"},
		{"request body stream", `(async () => { const r = new Request("http://x/", { method: "POST", body: "abc" }); const rd = r.body.getReader(); const { value } = await rd.read(); return value.constructor.name + value.length })()`, "Uint8Array3"},
		{"response from stream text", `new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode("s1")); c.close(); } })).text()`, "s1"},
		{"response stream clone", `(async () => { const r = new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([65])); c.close(); } })); const c = r.clone(); return (await r.text()) + (await c.text()) })()`, "AA"},
		{"body used after stream read", `(async () => { const r = new Response("x"); await r.text(); try { r.body.getReader(); await r.text(); return "reused" } catch (e) { return e.name } })()`, "TypeError"},
		{"instanceof global", `typeof ReadableStream + (new Response("x").body instanceof ReadableStream)`, "functiontrue"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := evalJS(t, c.expr); got != c.want {
				t.Fatalf("%s = %q, want %q", c.expr, got, c.want)
			}
		})
	}
}

// sinkRec is a BodySink that records what it is given.
type sinkRec struct {
	mu       sync.Mutex
	head     Response
	started  bool
	chunks   []string
	gone     chan struct{}
	failFrom int // Write fails from this chunk on (0: never)
	onChunk  func(n int)
}

func newSink() *sinkRec { return &sinkRec{gone: make(chan struct{})} }

func (s *sinkRec) Start(r Response) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.head, s.started = r, true
	return nil
}

func (s *sinkRec) Write(b []byte) error {
	s.mu.Lock()
	s.chunks = append(s.chunks, string(b))
	n := len(s.chunks)
	s.mu.Unlock()
	if s.onChunk != nil {
		s.onChunk(n)
	}
	if s.failFrom > 0 && n >= s.failFrom {
		return errors.New("broken pipe")
	}
	return nil
}

func (s *sinkRec) Gone() <-chan struct{} { return s.gone }

const sseAgent = `
let canceled = "";
export default { async fetch(req) {
	const p = new URL(req.url).pathname;
	if (p === "/canceled") return new Response(canceled);
	if (p === "/sse") {
		let i = 0;
		const body = new ReadableStream({
			start(c) {
				const id = setInterval(() => {
					i++;
					c.enqueue(new TextEncoder().encode("data: " + i + "\n\n"));
					if (i === 3) { clearInterval(id); c.close(); }
				}, 5);
			},
		});
		return new Response(body, { headers: { "content-type": "text/event-stream" } });
	}
	if (p === "/endless") {
		const chunk = new Uint8Array(256 * 1024); // 128 chunks reach the 32 MiB cap
		return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk); }, cancel(r) { canceled = String(r); } }));
	}
	if (p === "/slow") {
		return new Response(new ReadableStream({
			start(c) { c.enqueue(new TextEncoder().encode("first")); },
			pull(c) { return new Promise((res) => setTimeout(() => { c.enqueue(new TextEncoder().encode("tick")); res(); }, 60000)); },
			cancel(r) { canceled = String(r); },
		}));
	}
	if (p === "/throws") {
		return new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1])); }, pull(c) { throw new Error("producer broke"); } }));
	}
	if (p === "/string-chunks") return new Response(new ReadableStream({ start(c) { c.enqueue("a"); c.enqueue("b"); c.close(); } }));
	return new Response("plain");
} }`

// TestStreamedResponseClass: a Response whose body is a stream reaches a
// BodySink chunk by chunk, or Response.Body without one; the size cap, a
// client that goes away (by a failed write or by Gone while the producer
// waits) and a producer that throws end the stream without killing the
// isolate; the time limit does kill it.
func TestStreamedResponseClass(t *testing.T) {
	iso := newIsolate(t, sseAgent)
	h := newMemHost()
	ctx := context.Background()

	t.Run("sse to sink", func(t *testing.T) {
		s := newSink()
		resp, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "GET", URL: "http://x/sse", Sink: s}, h)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Streamed || len(resp.Body) != 0 || s.head.Header("content-type") != "text/event-stream" {
			t.Fatalf("resp = %+v, head %+v", resp, s.head)
		}
		if got := strings.Join(s.chunks, "|"); got != "data: 1\n\n|data: 2\n\n|data: 3\n\n" {
			t.Fatalf("chunks = %q", got)
		}
	})
	t.Run("sse gathered without sink", func(t *testing.T) {
		if got := get(t, iso, h, "http://x/sse"); got != "data: 1\n\ndata: 2\n\ndata: 3\n\n" {
			t.Fatalf("body = %q", got)
		}
	})
	t.Run("string chunks", func(t *testing.T) {
		if got := get(t, iso, h, "http://x/string-chunks"); got != "ab" {
			t.Fatalf("body = %q", got)
		}
	})
	for _, sink := range []bool{false, true} {
		t.Run("endless hits size cap", func(t *testing.T) {
			req := Request{Method: "GET", URL: "http://x/endless"}
			if sink {
				req.Sink = newSink()
			}
			// A bound for a hang, not a speed check: the time limit
			// must not be what ends the stream on a loaded machine.
			_, err := iso.Fetch(ctxTimeout(t, 60*time.Second), req, h)
			var se *SizeError
			if !errors.Is(err, ErrResponseTooLarge) || !errors.As(err, &se) || se.Limit != int64(iso.rt.cfg.MaxBodyBytes) {
				t.Fatalf("err = %v, want ErrResponseTooLarge with the limit", err)
			}
			if got := get(t, iso, h, "http://x/canceled"); !strings.Contains(got, "over the size limit") {
				t.Fatalf("cancel reason = %q", got)
			}
		})
	}
	t.Run("client write fails", func(t *testing.T) {
		s := newSink()
		s.failFrom = 3
		if _, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "GET", URL: "http://x/endless", Sink: s}, h); err != nil {
			t.Fatal(err)
		}
		if len(s.chunks) != 3 {
			t.Fatalf("%d chunks written after the client failed", len(s.chunks))
		}
		if got := get(t, iso, h, "http://x/canceled"); got != "the client went away" {
			t.Fatalf("cancel reason = %q", got)
		}
	})
	t.Run("client gone while waiting", func(t *testing.T) {
		s := newSink()
		s.onChunk = func(int) { time.AfterFunc(20*time.Millisecond, func() { close(s.gone) }) }
		if _, err := iso.Fetch(ctxTimeout(t, 10*time.Second), Request{Method: "GET", URL: "http://x/slow", Sink: s}, h); err != nil {
			t.Fatal(err)
		}
		if got := get(t, iso, h, "http://x/canceled"); got != "the client went away" {
			t.Fatalf("cancel reason = %q", got)
		}
	})
	t.Run("producer throws", func(t *testing.T) {
		_, err := iso.Fetch(ctxTimeout(t, 5*time.Second), Request{Method: "GET", URL: "http://x/throws", Sink: newSink()}, h)
		var je *JSError
		if !errors.As(err, &je) || !strings.Contains(je.Message, "producer broke") {
			t.Fatalf("err = %v", err)
		}
		if iso.Err() != nil {
			t.Fatalf("isolate died: %v", iso.Err())
		}
	})
	t.Run("time limit frees the isolate", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := iso.Fetch(tctx, Request{Method: "GET", URL: "http://x/slow", Sink: newSink()}, h)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if iso.Err() == nil {
			t.Fatal("isolate still alive after the time limit")
		}
	})
}
