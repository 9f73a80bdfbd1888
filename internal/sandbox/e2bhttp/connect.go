package e2bhttp

// The Connect protocol over JSON, as the e2b SDK speaks it to envd
// (connect.go): unary calls are a JSON body answered with a JSON body or
// an error {code, message} with the code's HTTP status; server-streaming
// calls frame each message as an envelope (1 flag byte, 4-byte big-endian
// length, the JSON) and end with an end-of-stream envelope (flag 0x02)
// that carries an error, if any. Only what the SDK uses is here: JSON
// codecs (no protobuf binary), no compression, no client streaming.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// Connect content types and envelope flags.
const (
	connectUnaryJSON  = "application/json"
	connectStreamJSON = "application/connect+json"
	flagEndStream     = 0x02
	flagCompressed    = 0x01
	// maxMessageBytes bounds one request message (an envd request is a
	// command line or a path; files go through /files).
	maxMessageBytes = 1 << 20
)

// connectCode names the Connect error code of a problem kind.
func connectCode(k api.Kind) string {
	switch k {
	case api.KindBadRequest, api.KindInvalidJSON, api.KindValidation, api.KindInvalidID, api.KindInvalidQuery, api.KindUnsupportedMedia:
		return "invalid_argument"
	case api.KindUnauthenticated:
		return "unauthenticated"
	case api.KindForbidden:
		return "permission_denied"
	case api.KindNotFound:
		return "not_found"
	case api.KindConflict:
		return "already_exists"
	case api.KindTooLarge, api.KindRateLimited, api.KindSandboxLimit, api.KindBudgetExceeded:
		return "resource_exhausted"
	case api.KindUnavailable, api.KindOverloaded, api.KindQueueTimeout:
		return "unavailable"
	case api.KindTimeout:
		return "deadline_exceeded"
	case api.KindSandboxFailed:
		return "failed_precondition"
	}
	return "internal"
}

// connectStatus is the HTTP status of a Connect error code.
var connectStatus = map[string]int{
	"canceled": 499, "unknown": 500, "invalid_argument": 400, "deadline_exceeded": 504,
	"not_found": 404, "already_exists": 409, "permission_denied": 403, "resource_exhausted": 429,
	"failed_precondition": 400, "aborted": 409, "out_of_range": 400, "unimplemented": 501,
	"internal": 500, "unavailable": 503, "data_loss": 500, "unauthenticated": 401,
}

// connectError is the JSON of a Connect error.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

func toConnectError(err error) connectError {
	p := api.AsProblem(err)
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	return connectError{Code: connectCode(p.Kind()), Message: msg}
}

// writeConnectError answers a unary call (or a stream that has not
// started) with err.
func writeConnectError(w http.ResponseWriter, err error) {
	ce := toConnectError(err)
	w.Header().Set("Content-Type", connectUnaryJSON)
	w.WriteHeader(connectStatus[ce.Code])
	_ = json.NewEncoder(w).Encode(ce)
}

// checkContentType refuses a request that is not Connect JSON of the
// wanted kind, naming what to send.
func checkContentType(r *http.Request, want string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return api.Errorf(api.KindUnsupportedMedia, "Content-Type %q: this Connect endpoint takes %s (the JSON codec; binary protobuf is not supported)",
			r.Header.Get("Content-Type"), want)
	}
	return nil
}

// decodeMessage unmarshals one JSON message into v, refusing anything
// that is not a JSON object of the message's shape.
func decodeMessage(b []byte, v any) error {
	if len(b) == 0 {
		return nil // the empty message: every field at its default
	}
	if err := json.Unmarshal(b, v); err != nil {
		return api.Errorf(api.KindInvalidJSON, "malformed message: %v", err)
	}
	return nil
}

// readUnary reads the JSON body of a unary call into v.
func readUnary(r *http.Request, v any) error {
	if err := checkContentType(r, connectUnaryJSON); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxMessageBytes+1))
	if err != nil {
		return bodyError(err)
	}
	if len(b) > maxMessageBytes {
		return api.Errorf(api.KindTooLarge, "message larger than %d bytes", maxMessageBytes)
	}
	return decodeMessage(b, v)
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return api.Errorf(api.KindTooLarge, "request body larger than the limit of %d bytes", mbe.Limit)
	}
	return api.Errorf(api.KindBadRequest, "read request body: %v", err)
}

// readEnvelope reads the one request envelope of a server-streaming call
// into v. A stream request with a bad frame, a compressed frame, more than
// one message or a message over the limit is refused.
func readEnvelope(r *http.Request, v any) error {
	if err := checkContentType(r, connectStreamJSON); err != nil {
		return err
	}
	if enc := r.Header.Get("Connect-Content-Encoding"); enc != "" && enc != "identity" {
		return api.Errorf(api.KindBadRequest, "Connect-Content-Encoding %q is not supported: send identity", enc)
	}
	msg, err := parseEnvelope(io.LimitReader(r.Body, maxMessageBytes+6))
	if err != nil {
		return err
	}
	return decodeMessage(msg, v)
}

// parseEnvelope reads exactly one uncompressed message envelope from r.
func parseEnvelope(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, api.Errorf(api.KindBadRequest, "malformed Connect envelope: want a 5-byte header (flags, big-endian length) and the message")
		}
		return nil, bodyError(err)
	}
	if hdr[0]&flagCompressed != 0 {
		return nil, api.Errorf(api.KindBadRequest, "compressed Connect messages are not supported")
	}
	if hdr[0] != 0 {
		return nil, api.Errorf(api.KindBadRequest, "malformed Connect envelope: flags 0x%02x on a request message", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxMessageBytes {
		return nil, api.Errorf(api.KindTooLarge, "Connect message of %d bytes is larger than the limit of %d", n, maxMessageBytes)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, api.Errorf(api.KindBadRequest, "malformed Connect envelope: %d bytes announced, fewer sent", n)
		}
		return nil, bodyError(err)
	}
	var extra [1]byte
	if k, _ := r.Read(extra[:]); k > 0 {
		return nil, api.Errorf(api.KindBadRequest, "a server-streaming call takes exactly one request message")
	}
	return msg, nil
}

// writeUnary answers a unary call with v.
func writeUnary(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", connectUnaryJSON)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// stream writes the response envelopes of a server-streaming call. It is
// safe for concurrent use (output and keepalives).
type stream struct {
	mu     sync.Mutex // guards w and broken
	w      http.ResponseWriter
	rc     *http.ResponseController
	broken bool
}

// startStream commits the 200 answer of a server-streaming call. The
// stream may outlive the server's read and write timeouts, meant for
// ordinary requests; the request body has been read.
func startStream(w http.ResponseWriter) *stream {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", connectStreamJSON)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &stream{w: w, rc: rc}
	_ = rc.Flush()
	return s
}

// send writes one message; false when the client has gone.
func (s *stream) send(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	return s.frame(0, b)
}

// end writes the end-of-stream envelope, with err if not nil.
func (s *stream) end(err error) {
	body := []byte("{}")
	if err != nil {
		ce := toConnectError(err)
		body, _ = json.Marshal(map[string]any{"error": ce})
	}
	s.frame(flagEndStream, body)
}

func (s *stream) frame(flags byte, b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return false
	}
	buf := make([]byte, 5+len(b))
	buf[0] = flags
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(b)))
	copy(buf[5:], b)
	if _, err := s.w.Write(buf); err != nil {
		s.broken = true
		return false
	}
	if err := s.rc.Flush(); err != nil {
		s.broken = true
		return false
	}
	return true
}

// keepaliveInterval reads the SDK's Keepalive-Ping-Interval (seconds),
// bounded to [1s, 5m]; 50s when absent or malformed.
func keepaliveInterval(r *http.Request) time.Duration {
	var s int
	if _, err := fmt.Sscanf(r.Header.Get("Keepalive-Ping-Interval"), "%d", &s); err != nil || s <= 0 {
		return 50 * time.Second
	}
	return min(max(time.Duration(s)*time.Second, time.Second), 5*time.Minute)
}
