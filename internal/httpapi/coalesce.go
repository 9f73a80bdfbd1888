package httpapi

// Request coalescing (coalesce.go): identical GETs in flight at once run
// their handler once; the others wait for its answer and get a copy.

import (
	"net/http"
	"strings"
	"sync"
)

// MaxCoalescedBody is the largest answer shared between coalesced
// requests; a larger one is sent to its own caller only, and the waiting
// requests run their handler themselves.
const MaxCoalescedBody = 1 << 20

// coalescedHeaders are the request fields that can change an answer
// besides who asks and the URL: they are part of the key.
var coalescedHeaders = []string{"Accept", "Accept-Encoding", "Accept-Language", "If-None-Match", "If-Modified-Since", "Range", "Prefer"}

// Coalescer shares the answer of one in-flight request with identical
// requests that arrive while it runs. It is no cache: an answer is shared
// only with requests that waited for it, and forgotten when it is done.
// The zero value is ready to use.
type Coalescer struct {
	mu      sync.Mutex
	flights map[string]*flight // guarded by mu
}

type flight struct {
	done    chan struct{}
	waiters int  // requests waiting for it; guarded by Coalescer.mu
	shared  bool // set before done closes: the answer below may be used
	status  int
	header  http.Header
	body    []byte
}

// CoalesceKey is the key of r for a caller known as identity ("" for a
// public answer that does not depend on who asks): the identity, method,
// host, URI and the request fields that can change the answer. Requests
// of different identities never share an answer, so one principal never
// sees an answer another was authorized for.
func CoalesceKey(r *http.Request, identity string) string {
	var b strings.Builder
	for _, s := range []string{identity, r.Method, r.Host, r.URL.RequestURI()} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	for _, h := range coalescedHeaders {
		for _, v := range r.Header.Values(h) {
			b.WriteString(h)
			b.WriteByte(':')
			b.WriteString(v)
			b.WriteByte(0)
		}
	}
	return b.String()
}

// Coalescible reports whether r may share an answer: a GET or HEAD that
// upgrades nothing.
func Coalescible(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Upgrade") == ""
}

// Do runs serve for r unless an identical request (same key) is in
// flight, in which case it waits for that one's answer and writes a copy
// (without its X-Request-Id). If that answer cannot be shared (too large,
// never written, the handler panicked) or r's context ends first, serve
// runs for r itself. It returns whether r got a shared answer.
func (c *Coalescer) Do(w http.ResponseWriter, r *http.Request, key string, serve func(w http.ResponseWriter)) bool {
	c.mu.Lock()
	if f, ok := c.flights[key]; ok {
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.shared {
				h := w.Header()
				for k, vs := range f.header {
					if k != "X-Request-Id" {
						h[k] = append([]string(nil), vs...)
					}
				}
				w.WriteHeader(f.status)
				_, _ = w.Write(f.body)
				return true
			}
		case <-r.Context().Done():
		}
		serve(w)
		return false
	}
	f := &flight{done: make(chan struct{})}
	if c.flights == nil {
		c.flights = map[string]*flight{}
	}
	c.flights[key] = f
	c.mu.Unlock()
	tee := &teeWriter{ResponseWriter: w}
	completed := false // false after a panic, which goes on up
	defer func() {
		f.shared = completed && tee.status != 0 && !tee.over && !tee.failed
		if f.shared {
			f.status, f.header, f.body = tee.status, tee.header, tee.buf
		}
		c.mu.Lock()
		delete(c.flights, key)
		c.mu.Unlock()
		close(f.done)
	}()
	serve(tee)
	completed = true
	return false
}

// teeWriter writes through to the leader's client and keeps a copy of the
// answer for the waiting requests, up to MaxCoalescedBody.
type teeWriter struct {
	http.ResponseWriter
	status int
	header http.Header
	buf    []byte
	over   bool
	failed bool
}

func (t *teeWriter) WriteHeader(code int) {
	if t.status == 0 && code >= 200 {
		t.status, t.header = code, t.ResponseWriter.Header().Clone()
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(p []byte) (int, error) {
	if t.status == 0 {
		t.WriteHeader(http.StatusOK)
	}
	if !t.over {
		if len(t.buf)+len(p) > MaxCoalescedBody {
			t.over, t.buf = true, nil
		} else {
			t.buf = append(t.buf, p...)
		}
	}
	n, err := t.ResponseWriter.Write(p)
	if err != nil {
		t.failed = true
	}
	return n, err
}

// Flush passes flushes on (streamed answers are still copied whole).
func (t *teeWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the leader's writer.
func (t *teeWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Waiting is how many requests wait for an answer in flight.
func (c *Coalescer) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, f := range c.flights {
		n += f.waiters
	}
	return n
}
