// Package isolate runs agent code in WebAssembly isolates on wazero.
//
// It owns: the wazero runtime and its on-disk compilation cache, the embedded
// QuickJS-NG engine (see package quickjs) and the Go glue that drives it, the
// JavaScript prelude that gives agent modules web-standard APIs (Request,
// Response, Headers, URL, TextEncoder, crypto, timers, fetch, console), the
// bridge from those APIs to a [Host], per-isolate limits (memory, stack,
// CPU/wall time via context), heap snapshots with template deltas, and the
// raw-wasm path for any WASI module speaking the ABI in ABI.md.
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
