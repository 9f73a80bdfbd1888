package isolate

import (
	"context"
	"time"
)

// Host is what an isolate can reach outside itself. The session layer
// implements it per call; all methods are synchronous in Go and surface as
// Promises in JavaScript. Errors returned by a Host method become a rejected
// Promise in the guest: a *HostError (wrapped or not) as the class it
// names, any other error as an Error with the Go error's text.
type Host interface {
	// StateGet returns the JSON value stored under key.
	StateGet(key string) (value []byte, ok bool, err error)
	// StatePut stores a JSON value under key.
	StatePut(key string, value []byte) error
	// StateDelete removes key; deleting a missing key is not an error.
	StateDelete(key string) error
	// StateList returns up to limit entries (limit <= 0: no limit) whose keys
	// start with prefix, in key order.
	StateList(prefix string, limit int) ([]KV, error)

	// SetAlarm schedules the session's alarm, replacing any earlier one.
	SetAlarm(at time.Time) error
	// GetAlarm returns the scheduled alarm, if any.
	GetAlarm() (time.Time, bool, error)
	// DeleteAlarm cancels the alarm.
	DeleteAlarm() error

	// Fetch performs an outbound request. The host enforces egress policy.
	Fetch(ctx context.Context, req Request) (Response, error)

	// Invoke calls a platform service agent code reaches as env.<service>
	// (tools, ai, sandbox): args and the result are JSON. A *HostError
	// surfaces in JavaScript as the class it names (NotSupportedError,
	// TypeError, ...).
	Invoke(ctx context.Context, service, method string, args []byte) ([]byte, error)

	// Log receives console output; level is one of debug, info, log, warn,
	// error.
	Log(level, msg string)
}

// Yielder is a Host that wants to hear of the guest's yields: Yield runs on
// the goroutine (and thread) running the call, at the loop checks' calls
// into Go (at most every yieldEvery loop entries) and at QuickJS's
// interrupt polls, so a host can read the call's thread CPU clock only when
// the guest has run long enough for it to matter (session's cpuWatch). A
// Yield that ends the call's context stops the guest as a preemption does.
type Yielder interface {
	Yield()
}

// KV is one state entry; Value is JSON.
type KV struct {
	Key   string
	Value []byte
}

// Request is an HTTP request as the isolate sees it. URL is absolute.
type Request struct {
	Method  string
	URL     string
	Headers [][2]string // name, value; names are case-insensitive
	Body    []byte
	// Sink, if set, receives a response body the agent makes as a stream,
	// chunk by chunk while it is made (stream.go); otherwise such a body is
	// gathered into Response.Body. Not used for outbound requests.
	Sink BodySink
}

// Response is an HTTP response.
type Response struct {
	Status     int
	StatusText string
	Headers    [][2]string
	Body       []byte
	// Streamed is set when the body went to the request's Sink (Body is
	// then empty).
	Streamed bool
}

// Header returns the first value of the named header (case-insensitive).
func (r Response) Header(name string) string { return header(r.Headers, name) }

// Header returns the first value of the named header (case-insensitive).
func (r Request) Header(name string) string { return header(r.Headers, name) }

func header(hs [][2]string, name string) string {
	for _, h := range hs {
		if equalFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
