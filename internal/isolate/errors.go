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
