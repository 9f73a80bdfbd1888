// Package otlptest is an in-process OTLP/HTTP trace receiver for tests: a
// real HTTP server on loopback that decodes the protobuf export requests
// the daemon's exporter sends (go.opentelemetry.io/proto/otlp) and keeps
// the spans. It is test support; nothing in the daemon imports it.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, ids in lowercase hex.
type Span struct {
	TraceID, SpanID, ParentID string
	Name                      string
	Kind                      int32
	Attrs                     map[string]string // string, int and bool values as text
	LinkTraceIDs              []string
	Error                     bool // status code error
	Service                   string
}

// Receiver collects spans.
type Receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	spans   []Span
	exports int
	hang    chan struct{} // non-nil: every export waits until Close
}

// New starts a receiver on loopback, closed when t ends.
func New(t testing.TB) *Receiver { return start(t, false) }

// NewHanging starts a receiver that never answers an export until the
// test ends: a collector that is down in the worst way.
func NewHanging(t testing.TB) *Receiver { return start(t, true) }

func start(t testing.TB, hang bool) *Receiver {
	r := &Receiver{}
	if hang {
		r.hang = make(chan struct{})
	}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		if r.hang != nil {
			close(r.hang)
		}
		r.srv.CloseClientConnections()
		r.srv.Close()
	})
	return r
}

// URL is the receiver's traces endpoint.
func (r *Receiver) URL() string { return r.srv.URL + "/v1/traces" }

func (r *Receiver) serve(w http.ResponseWriter, q *http.Request) {
	if q.Method != http.MethodPost || q.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	r.mu.Lock()
	r.exports++
	r.mu.Unlock()
	if r.hang != nil {
		select {
		case <-r.hang:
		case <-q.Context().Done():
		}
		return
	}
	var body io.Reader = http.MaxBytesReader(w, q.Body, 64<<20)
	if q.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Name: s.GetName(), Kind: int32(s.GetKind()), Attrs: map[string]string{}, Service: service,
					Error: s.GetStatus().GetCode() == 2}
				if p := s.GetParentSpanId(); len(p) > 0 {
					sp.ParentID = hex.EncodeToString(p)
				}
				for _, kv := range s.GetAttributes() {
					v := kv.GetValue()
					switch {
					case v.GetStringValue() != "":
						sp.Attrs[kv.GetKey()] = v.GetStringValue()
					default:
						sp.Attrs[kv.GetKey()] = fmt.Sprint(v.GetIntValue())
					}
				}
				for _, l := range s.GetLinks() {
					sp.LinkTraceIDs = append(sp.LinkTraceIDs, hex.EncodeToString(l.GetTraceId()))
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Exports is how many export requests arrived (answered or not).
func (r *Receiver) Exports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports
}

// Wait returns the spans once ok says they are complete, or an error
// once ctx ends (the exporter sends in batches, so spans arrive late).
func (r *Receiver) Wait(ctx context.Context, ok func([]Span) bool) ([]Span, error) {
	for {
		s := r.Spans()
		if ok(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("otlptest: %d spans received, the condition never held: %w", len(s), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Trace returns the spans of one trace.
func Trace(spans []Span, traceID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Named returns the first span named name, and whether there is one.
func Named(spans []Span, name string) (Span, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return Span{}, false
}
