package sessionhttp_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// streamJS streams server-sent events and other bodies.
const streamJS = `
let canceled = "";
const te = new TextEncoder();
export default { async fetch(req, env) {
	const p = new URL(req.url).pathname;
	if (p === "/canceled") return new Response(canceled);
	if (p === "/sse") {
		// One event now, the next only after a minute: a client that sees
		// the first before the body ends got it streamed.
		await env.state.put("before", "head");
		let n = 0;
		return new Response(new ReadableStream({
			start(c) { c.enqueue(te.encode("event: tick\ndata: 1\n\n")); },
			pull(c) { return new Promise((res) => setTimeout(() => { c.enqueue(te.encode("data: " + (++n) + "\n\n")); res(); }, 60000)); },
			cancel(r) { canceled = String(r); },
		}), { headers: { "content-type": "text/event-stream", "cache-control": "no-store" } });
	}
	if (p === "/endless") {
		const chunk = new Uint8Array(65536);
		return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk); }, cancel(r) { canceled = String(r); } }));
	}
	if (p === "/finite") {
		let i = 0;
		return new Response(new ReadableStream({ pull(c) { if (++i > 3) { c.close(); return; } return new Promise((res) => setTimeout(() => { c.enqueue(te.encode("part" + i + ";")); res(); }, 1)); } }));
	}
	if (p === "/echo-stream") {
		const r = req.body.getReader();
		let n = 0, chunks = 0;
		for (;;) { const { done, value } = await r.read(); if (done) break; n += value.byteLength; chunks++; }
		return new Response(req.body === null ? "null" : n + " bytes");
	}
	if (p === "/gzip") return new Response(new Response("hello ".repeat(100)).body.pipeThrough(new CompressionStream("gzip")), { headers: { "content-encoding": "gzip" } });
	return new Response("plain");
} }`

// TestStreamedTrafficClass: a streamed Response reaches an HTTP client on
// loopback as it is produced; a client that goes away cancels the stream
// and the session keeps serving with its heap; an endless stream hits the
// body limit and the client sees a body that does not end properly; state
// written before the stream is durable once the head arrives; request
// bodies read as streams; a finite stream ends cleanly (chunked).
func TestStreamedTrafficClass(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.deploy(t, "", agentFiles("streamer", streamJS)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("deploy: %d %s", resp.StatusCode, body)
	}
	base := e.srv.URL + "/agents/streamer/sessions/s1"

	t.Run("sse streamed then client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/sse", nil)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("Content-Type") != "text/event-stream" || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("head: %v %v", resp.Header, resp.TransferEncoding)
		}
		br := bufio.NewReader(resp.Body)
		var ev []string
		for len(ev) < 3 {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			ev = append(ev, line)
		}
		if strings.Join(ev, "") != "event: tick\ndata: 1\n\n" {
			t.Fatalf("first event = %q", ev)
		}
		// The output gate: what the handler wrote before answering is
		// durable before the head went out.
		if v, ok, err := e.m.StateGet(context.Background(), "streamer", "s1", "before"); err != nil || !ok || string(v) != `"head"` {
			t.Fatalf("state before the stream = %s %v %v", v, ok, err)
		}
		// Hibernation waits for the stream: it cannot return before the
		// client leaves (and the stream ends), and then it succeeds.
		var left atomic.Bool
		hib := make(chan error, 1)
		go func() {
			err := e.m.Hibernate(context.Background(), "streamer", "s1")
			if err == nil && !left.Load() {
				err = errors.New("hibernated while the session was streaming")
			}
			hib <- err
		}()
		select {
		case err := <-hib:
			t.Fatalf("Hibernate returned (%v) while the session streamed", err)
		case <-time.After(300 * time.Millisecond):
		}
		left.Store(true)
		cancel()
		resp.Body.Close()
		if err := <-hib; err != nil {
			t.Fatal(err)
		}
		if _, body := e.do(t, "", "GET", "/agents/streamer/sessions/s1/canceled", nil, nil); string(body) != "the client went away" {
			t.Fatalf("cancel reason = %q", body)
		}
	})
	t.Run("endless stream hits the body limit", func(t *testing.T) {
		resp, err := e.srv.Client().Get(base + "/endless")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil || n > bodyLimit {
			t.Fatalf("read %d bytes, err %v: want a body cut short at or under %d bytes", n, err, bodyLimit)
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("err = %v", err)
		}
		if _, body := e.do(t, "", "GET", "/agents/streamer/sessions/s1/canceled", nil, nil); !strings.Contains(string(body), "over the size limit") {
			t.Fatalf("cancel reason = %q", body)
		}
	})
	t.Run("finite stream", func(t *testing.T) {
		if resp, body := e.do(t, "", "GET", "/agents/streamer/sessions/s1/finite", nil, nil); resp.StatusCode != 200 || string(body) != "part1;part2;part3;" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
	t.Run("request body as stream", func(t *testing.T) {
		if _, body := e.do(t, "", "POST", "/agents/streamer/sessions/s1/echo-stream", strings.NewReader(strings.Repeat("x", 5000)), nil); string(body) != "5000 bytes" {
			t.Fatalf("body = %q", body)
		}
	})
	t.Run("compressed stream", func(t *testing.T) {
		resp, body := e.do(t, "", "GET", "/agents/streamer/sessions/s1/gzip", nil, nil)
		if resp.StatusCode != 200 || string(body) != strings.Repeat("hello ", 100) {
			t.Fatalf("%d %q (the client should have gunzipped it)", resp.StatusCode, body)
		}
	})
}
