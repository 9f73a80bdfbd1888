package isolate

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestWasmValidatedAsUploadedClass: a raw wasm module is checked before
// the rewriter adds its globals and import. A loop that sets global 1 in a
// module with no globals is invalid as uploaded, but would be valid, and
// would rewrite the added tick so its loop checks never run, after the
// rewrite; and a start section would run inside instantiation before the
// preempter is armed. Both are refused, quickly, with a reason.
func TestWasmValidatedAsUploadedClass(t *testing.T) {
	hdr := "\x00asm\x01\x00\x00\x00"
	types := "\x01\x04\x01\x60\x00\x00" // type 0: () -> ()
	funcs := "\x03\x02\x01\x00"         // func 0: type 0
	for name, tc := range map[string]struct{ mod, want string }{
		// loop { global.set 1 (i32.const 100); br 0 }
		"writes an added global": {hdr + types + funcs + "\x0a\x0e\x01\x0c\x00\x03\x40\x41\xe4\x00\x24\x01\x0c\x00\x0b\x0b", "invalid module"},
		// reads one, too
		"reads an added global": {hdr + types + funcs + "\x0a\x0c\x01\x0a\x00\x03\x40\x23\x00\x1a\x0c\x00\x0b\x0b", "invalid module"},
		// start: func 0, an empty body
		"has a start section": {hdr + types + funcs + "\x08\x01\x00" + "\x0a\x04\x01\x02\x00\x0b", "start section"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := testRuntime(t).NewWasm(ctx, WasmSpec{Module: []byte(tc.mod)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewWasm: %v, want an error naming %q", err, tc.want)
			}
			if ctx.Err() != nil {
				t.Fatal("refused only by the deadline")
			}
		})
	}
}
