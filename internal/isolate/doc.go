// Package isolate runs agent code in WebAssembly isolates on wazero.
//
// It owns: the wazero runtime and its on-disk compilation cache, the embedded
// QuickJS-NG engine (see package quickjs) and the Go glue that drives it, the
// JavaScript prelude that gives agent modules web-standard APIs (Request,
// Response, Headers, URL, TextEncoder, crypto, timers, fetch, console), with
// crypto.subtle (webcrypto.js over Go's crypto in webcrypto.go, keys kept in
// the heap) and structuredClone (clone.js and jsonclone.js, also the
// env.state encoding), web streams (streams.js, generated from
// web-streams-polyfill by scripts/gen-streams.sh) with response bodies
// streamed to a [BodySink] (stream.go), and WebSocketPair with socket events
// delivered by [Isolate.SocketEvent] (websocket.js, socket.go), the
// bridge from those APIs to a [Host], per-isolate limits (memory, stack,
// CPU/wall time via context), heap snapshots with template deltas, and the
// raw-wasm path ([Runtime.NewWasm]) for any WASI module speaking the ABI in
// ABI.md.
//
// Performance notes. The QuickJS module is rewritten before compilation
// (instrument.go, dispatch.go): a stop flag tested at every loop header
// preempts the guest when a call's context ends, much cheaper than
// wazero's own termination checks, and one dispatcher export stands in for
// the ~40 exports the Go glue calls, so an isolate holds two wazero call
// stacks rather than dozens. Templates live in sealed memfds and are mapped
// copy-on-write into each restored isolate (image.go), so a restore costs
// what the session touches, not a copy of the heap, and untouched pages are
// shared by every session of an agent version; a closed session's
// reservation is reset to its template and reused (pool.go). Snapshots store the bytes
// that differ from the template (snapdiff.go), typically 2-4 KB compressed.
// [Isolate.Trim] gives back what an idle isolate can rebuild.
//
// It does not own sessions, storage, alarm scheduling, egress policy or
// hibernation decisions: those belong to the session layer, which implements
// [Host] and decides when to call [Isolate.Snapshot] and [Runtime.Restore].
//
// An Isolate runs one call at a time. Any error wrapping [ErrTimeout],
// [ErrMemoryExceeded] or [ErrCrashed] leaves the isolate dead: every later
// call returns [ErrDead]. A JavaScript exception is a *[JSError] and leaves the
// isolate usable.
package isolate
