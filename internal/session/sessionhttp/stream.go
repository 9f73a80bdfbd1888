package sessionhttp

import (
	"context"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// StreamStall is how long one chunk of a streamed response may wait for a
// client that does not read: past it the write fails and the stream is
// canceled. With it, a slow client holds at most one chunk in the daemon
// (the agent's stream is pulled only as chunks are written) and ties up
// its session for at most this long per chunk.
const StreamStall = 10 * time.Second

// httpSink passes a streamed response to the HTTP client: the head when the
// stream starts, then each chunk written and flushed as it comes (chunked
// transfer encoding, as the length is not known).
type httpSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	// ctx is the request's: its Done channel is made (allocated) only
	// when a stream asks for it, not for every request.
	ctx     context.Context
	started bool
}

var _ isolate.BodySink = (*httpSink)(nil)

func newHTTPSink(w http.ResponseWriter, r *http.Request) *httpSink {
	return &httpSink{w: w, ctx: r.Context()} // rc once a stream starts
}

func (s *httpSink) Start(resp isolate.Response) error {
	s.started = true
	s.rc = http.NewResponseController(s.w)
	writeHead(s.w, resp)
	return s.rc.Flush()
}

func (s *httpSink) Write(chunk []byte) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(StreamStall))
	if _, err := s.w.Write(chunk); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *httpSink) Gone() <-chan struct{} { return s.ctx.Done() }

// done clears the write deadline the chunks set, for the next request on
// the connection.
func (s *httpSink) done() { _ = s.rc.SetWriteDeadline(time.Time{}) }
