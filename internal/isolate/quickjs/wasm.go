// Package quickjs embeds the QuickJS-NG engine compiled to WASI (the npm
// package quickjs-wasi, pinned by version and sha256). It owns only the bytes;
// internal/isolate owns how they are run.
//
// The wasm is not checked in. If the build fails with
//
//	pattern quickjs.wasm: no matching files found
//
// fetch it first: run `make quickjs` or `scripts/fetch-quickjs.sh` from the
// repository root. The script verifies the npm tarball's sha256 and writes
// internal/isolate/quickjs/quickjs.wasm (gitignored).
package quickjs

import _ "embed"

// Wasm is quickjs.wasm from quickjs-wasi@3.6.2: a wasm32-wasip1 reactor that
// exports its memory, __stack_pointer and a C interface (qjs_*) over QuickJS.
//
// Missing file? Run `make quickjs` or `scripts/fetch-quickjs.sh`.
//
//go:embed quickjs.wasm
var Wasm []byte

// Package, Version and SHA256 identify the embedded binary. SHA256 must match
// WASM_SHA256 in scripts/fetch-quickjs.sh (a test checks both).
const (
	Package = "quickjs-wasi"
	Version = "3.6.2"
	SHA256  = "d4c9375f2b1ca4dc95f72c8aa2982a7a9951ac8011490d79c6582df732b4bbd9"
)
