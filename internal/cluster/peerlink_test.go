package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/cluster"
)

// linkDo sends method url (body if not empty) over link and returns the
// answer's status and body.
func linkDo(t *testing.T, link http.RoundTripper, method, url, body string) (int, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := link.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestPeerLinkConnectionReuseClass: the link keeps connections between
// requests, and no answer is ever read from a connection that another
// request left in the middle of an answer (a body closed before its end,
// a cancelled stream), that the peer closed while idle (a restarted
// member), or that carried a malformed answer: each later request gets
// its own answer, and a request with a body is never sent twice.
func TestPeerLinkConnectionReuseClass(t *testing.T) {
	var posts atomic.Int64
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/post":
			b, _ := io.ReadAll(r.Body)
			posts.Add(1)
			fmt.Fprintf(w, "got %s", b)
		case "/big":
			w.Header().Set("Content-Length", "1000000")
			chunk := strings.Repeat("x", 1000)
			for range 1000 {
				if _, err := io.WriteString(w, chunk); err != nil {
					return
				}
			}
		case "/stream":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			fmt.Fprintf(w, "path %s", r.URL.Path)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	link := cluster.PeerTransport(nil)
	defer link.CloseIdleConnections()

	check := func(method, path, body, want string) {
		t.Helper()
		code, got, err := linkDo(t, link, method, srv.URL+path, body)
		if err != nil || code != 200 || got != want {
			t.Fatalf("%s %s: %d %q %v, want %q", method, path, code, got, err, want)
		}
	}
	for i := range 20 {
		check("GET", fmt.Sprintf("/a%d", i), "", fmt.Sprintf("path /a%d", i))
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("20 requests in turn took %d connections, want 1 kept alive", n)
	}

	// A body closed before its end: the rest is not read by the next
	// request.
	req, _ := http.NewRequest("GET", srv.URL+"/big", nil)
	resp, err := link.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check("GET", "/after-big", "", "path /after-big")

	// A stream cancelled while read: its goroutine is not left blocked,
	// and the next request gets its own answer.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/stream", nil)
	resp, err = link.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: 0\n" {
		t.Fatalf("stream: %q %v", line, err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, br); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled stream read: %v, want context.Canceled", err)
	}
	resp.Body.Close()
	check("GET", "/after-stream", "", "path /after-stream")

	// No body, on a kept-alive connection.
	for range 3 {
		req, _ := http.NewRequest("DELETE", srv.URL+"/empty", nil)
		resp, err := link.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("204: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	check("POST", "/post", "one", "got one")

	// The peer closes its idle connections (a member restarting): the
	// next requests, with and without a body, go out on a new one, once.
	srv.CloseClientConnections()
	before := posts.Load()
	check("POST", "/post", "two", "got two")
	check("GET", "/after-close", "", "path /after-close")
	if n := posts.Load() - before; n != 1 {
		t.Fatalf("a POST after the peer closed the idle connection ran %d times, want 1", n)
	}
}

// TestPeerLinkMalformedAnswerClass: a peer (or something on its port)
// that answers garbage, an answer longer than it says, or nothing, fails
// that request only: the connection is not used again, and a POST is
// never sent twice.
func TestPeerLinkMalformedAnswerClass(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	var mu sync.Mutex
	var seen []string // request lines, in order
	answers := map[string]string{
		"/garbage": "NOT HTTP AT ALL\r\n\r\n",
		"/long":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
		"/hang-up": "",
		"/ok":      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					mu.Lock()
					seen = append(seen, req.Method+" "+req.URL.Path)
					mu.Unlock()
					a := answers[req.URL.Path]
					if a == "" {
						return
					}
					if _, err := io.WriteString(c, a); err != nil {
						return
					}
				}
			})
		}
	})
	link := cluster.PeerTransport(nil)
	defer link.CloseIdleConnections()
	base := "http://" + ln.Addr().String()
	if _, _, err := linkDo(t, link, "GET", base+"/ok", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := linkDo(t, link, "GET", base+"/garbage", ""); err == nil {
		t.Fatal("a malformed answer was taken")
	}
	if code, body, err := linkDo(t, link, "GET", base+"/long", ""); err != nil || code != 200 || body != "ok" {
		t.Fatalf("/long: %d %q %v", code, body, err)
	}
	// The bytes past /long's answer must not be taken as this answer.
	if code, body, err := linkDo(t, link, "GET", base+"/ok", ""); err != nil || code != 200 || body != "ok" {
		t.Fatalf("after /long: %d %q %v, want the answer of its own", code, body, err)
	}
	mu.Lock()
	seen = nil
	mu.Unlock()
	if _, _, err := linkDo(t, link, "POST", base+"/hang-up", "body"); err == nil {
		t.Fatal("a request answered by a hang-up succeeded")
	}
	if _, _, err := linkDo(t, link, "POST", base+"/hang-up", ""); err == nil {
		t.Fatal("a request answered by a hang-up succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"POST /hang-up", "POST /hang-up"}; strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("the peer saw %q, want %q (a POST is never sent twice)", seen, want)
	}
}

// TestPeerLinkFallbackClass: requests the link cannot carry in the
// forwarding goroutine (a body of unknown length that streams while the
// answer does) go through net/http's Transport and still work.
func TestPeerLinkFallbackClass(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Echo each line as it comes: a full-duplex exchange.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Error(err)
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(w, "echo %s", line)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	srv.EnableHTTP2 = false
	link := cluster.PeerTransport(nil)
	defer link.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", srv.URL+"/duplex", pr)
	req.ContentLength = -1
	done := make(chan struct{})
	var resp *http.Response
	var err error
	go func() { resp, err = link.RoundTrip(req); close(done) }()
	if _, werr := io.WriteString(pw, "one\n"); werr != nil {
		t.Fatal(werr)
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "echo one\n" {
		t.Fatalf("duplex: %q %v", line, err)
	}
	if _, err := io.WriteString(pw, "two\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "echo two\n" {
		t.Fatalf("duplex: %q %v", line, err)
	}
	pw.Close()
}
