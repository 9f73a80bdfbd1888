// Package openaitest is an OpenAI-compatible server on loopback for tests
// and benchmarks of the model gateway: chat completions (JSON and
// server-sent events with a final usage chunk) and embeddings, with
// scripted failures (status codes, Retry-After, delays). It stands in for
// an external LLM provider; it is never used outside tests.
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Failure is one scripted answer that replaces a normal one.
type Failure struct {
	Status     int           // HTTP status to answer with (0: answer normally after Delay)
	RetryAfter string        // Retry-After header value
	Delay      time.Duration // wait before answering (or until the client gives up)
	Message    string        // error.message
}

// Request is what the server received.
type Request struct {
	Path          string
	Authorization string
	Body          map[string]any
	At            time.Time
}

// Server is a running fake provider.
type Server struct {
	*httptest.Server
	// Name is put in answers ("model" is the requested upstream model).
	Name string

	mu       sync.Mutex // protects the fields below
	failures []Failure
	requests []Request
	reply    string
	// usage reported: completion tokens are capped at max_tokens
	promptTokens, completionTokens int64
	chunks                         int
	chunkDelay                     time.Duration
	gate                           chan struct{}
}

// New starts a server; it stops when the test ends.
func New(t interface{ Cleanup(func()) }, name string) *Server {
	s := &Server{Name: name, reply: "hello from " + name, promptTokens: 10, completionTokens: 5, chunks: 3}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

// BaseURL is the API root (what a provider's base URL is).
func (s *Server) BaseURL() string { return s.Server.URL + "/v1" }

// Fail queues failures, used one per request before normal answers resume.
func (s *Server) Fail(f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, f...)
}

// SetReply sets the assistant text and the usage reported.
func (s *Server) SetReply(text string, prompt, completion int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply, s.promptTokens, s.completionTokens = text, prompt, completion
}

// SetStream sets how many content chunks a stream has and the pause between them.
func (s *Server) SetStream(chunks int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks, s.chunkDelay = chunks, delay
}

// HoldStream makes the next streams wait after their first chunk until
// the returned function is called.
func (s *Server) HoldStream() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := make(chan struct{})
	s.gate = g
	var once sync.Once
	return func() { once.Do(func() { close(g) }) }
}

// Requests returns what the server received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &body); err != nil {
		writeError(w, 400, "invalid JSON: "+err.Error())
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, Request{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body, At: time.Now()})
	var f *Failure
	if len(s.failures) > 0 {
		f = &s.failures[0]
		s.failures = s.failures[1:]
	}
	reply, pt, ct, chunks, chunkDelay, gate := s.reply, s.promptTokens, s.completionTokens, s.chunks, s.chunkDelay, s.gate
	s.mu.Unlock()
	if f != nil {
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.Status != 0 {
			if f.RetryAfter != "" {
				w.Header().Set("Retry-After", f.RetryAfter)
			}
			msg := f.Message
			if msg == "" {
				msg = http.StatusText(f.Status)
			}
			writeError(w, f.Status, msg)
			return
		}
	}
	model, _ := body["model"].(string)
	if model == "" {
		writeError(w, 400, "you must provide a model parameter")
		return
	}
	if mt, ok := body["max_tokens"].(float64); ok && int64(mt) < ct {
		ct = int64(mt)
	}
	usage := map[string]int64{"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
	switch {
	case strings.HasSuffix(r.URL.Path, "/embeddings"):
		usage = map[string]int64{"prompt_tokens": pt, "total_tokens": pt}
		writeJSON(w, map[string]any{"object": "list", "model": model, "usage": usage,
			"data": []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.1, 0.2, 0.3}}}})
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		if stream, _ := body["stream"].(bool); stream {
			opts, _ := body["stream_options"].(map[string]any)
			withUsage, _ := opts["include_usage"].(bool)
			s.stream(w, r, model, reply, chunks, chunkDelay, gate, withUsage, usage)
			return
		}
		writeJSON(w, map[string]any{"id": "chatcmpl-" + s.Name, "object": "chat.completion", "model": model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": reply}}},
			"usage": usage})
	default:
		writeError(w, 404, "no such endpoint "+r.URL.Path)
	}
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, model, reply string, chunks int, delay time.Duration, gate chan struct{}, withUsage bool, usage map[string]int64) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(200)
	fl := w.(http.Flusher)
	send := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	parts := split(reply, chunks)
	for i, p := range parts {
		if i == 1 && gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if i > 0 && delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		send(map[string]any{"id": "chatcmpl-" + s.Name, "object": "chat.completion.chunk", "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}}}})
	}
	if withUsage {
		send(map[string]any{"id": "chatcmpl-" + s.Name, "object": "chat.completion.chunk", "model": model,
			"choices": []any{}, "usage": usage})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

// split cuts s into n nearly equal parts (at least one).
func split(s string, n int) []string {
	if n < 1 {
		n = 1
	}
	if n > len(s) {
		n = max(len(s), 1)
	}
	var out []string
	size := (len(s) + n - 1) / n
	for i := 0; i < len(s); i += size {
		out = append(out, s[i:min(i+size, len(s))])
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "test_error"}})
}
