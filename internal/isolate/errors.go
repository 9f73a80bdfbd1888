package isolate

import (
	"errors"
	"fmt"
)

// Error kinds. Test with errors.Is.
var (
	// ErrTimeout: the call's context deadline passed (CPU or wall time).
	ErrTimeout = errors.New("isolate: time limit exceeded")
	// ErrMemoryExceeded: the isolate hit its memory limit.
	ErrMemoryExceeded = errors.New("isolate: memory limit exceeded")
	// ErrCrashed: the guest trapped or broke the host ABI.
	ErrCrashed = errors.New("isolate: crashed")
	// ErrDead: the isolate failed or was closed earlier and cannot be reused.
	ErrDead = errors.New("isolate: dead")
	// ErrNoHandler: the module does not export the requested handler
	// (default.fetch or default.alarm).
	ErrNoHandler = errors.New("isolate: handler not exported")
	// ErrRequestTooLarge: a request body into the isolate is larger than
	// Config.MaxBodyBytes (a *SizeError says how large).
	ErrRequestTooLarge = errors.New("isolate: request body too large")
	// ErrResponseTooLarge: the agent's response is larger than
	// Config.MaxBodyBytes; it was refused by its length, before the host
	// copied it. The isolate stays usable.
	ErrResponseTooLarge = errors.New("isolate: response too large")
	// ErrMemoryRange: a spec's memory limit is outside what the engine
	// runs with (MinMemoryMiB or MinWasmMemoryMiB to Config.MaxMemoryMiB),
	// or below a wasm module's declared initial memory.
	ErrMemoryRange = errors.New("isolate: memory limit out of range")
	// ErrBadSnapshot: a snapshot is corrupt, from another format version, or a
	// delta applied to the wrong template.
	ErrBadSnapshot = errors.New("isolate: bad snapshot")
)

// SizeError is a body or host-call argument longer than
// Config.MaxBodyBytes, refused by its length before the host copied it.
type SizeError struct {
	Size, Limit int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("%d bytes; the limit is %d", e.Size, e.Limit)
}

// JSError is an exception thrown by agent JavaScript and not caught by it.
type JSError struct {
	Name    string // constructor name, e.g. "TypeError"
	Message string
	Stack   string // QuickJS backtrace, may be empty
}

func (e *JSError) Error() string {
	if e.Name == "" {
		return "js: " + e.Message
	}
	return fmt.Sprintf("js: %s: %s", e.Name, e.Message)
}

// HostError is an error a host call raises in the guest as a JavaScript
// exception of a chosen class: Name "TypeError", "RangeError" or
// "SyntaxError" throws an instance of that class, any other name
// ("NotSupportedError", "ModelError", ...) an Error whose name is Name, and
// an empty Name a plain Error. The guest sees Name and Message, nothing of
// Err. Host methods (Host.Invoke, Fetch, the state calls) and the services
// behind env.<name> return one, wrapped or not, to choose the class; any
// other error is thrown as a plain Error carrying the error's text. The raw
// wasm ABI, which has no exceptions, logs it as "Name: Message".
type HostError struct {
	Name    string
	Message string
	// Err is the cause, for errors.Is and errors.As on the Go side.
	Err error
}

func (e *HostError) Error() string {
	if e.Name == "" {
		return e.Message
	}
	return e.Name + ": " + e.Message
}

func (e *HostError) Unwrap() error { return e.Err }

// HostErrorf returns a HostError named name whose message is formatted as
// by fmt.Errorf; an operand of %w becomes its Err.
func HostErrorf(name, format string, args ...any) *HostError {
	err := fmt.Errorf(format, args...)
	return &HostError{Name: name, Message: err.Error(), Err: errors.Unwrap(err)}
}

// guestError is the class name and message a host call's error is thrown
// with in the guest (see HostError).
func guestError(err error) (name, message string) {
	var he *HostError
	if errors.As(err, &he) {
		return he.Name, he.Message
	}
	return "", err.Error()
}
