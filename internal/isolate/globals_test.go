package isolate

import (
	"strings"
	"testing"
)

// TestWorkerGlobalsClass: self is the global object, reportError logs an
// error as an uncaught one is logged and returns, and crypto and
// crypto.subtle are instances of Crypto and SubtleCrypto, which user code
// cannot construct (TypeError "Illegal constructor", as on Workers).
func TestWorkerGlobalsClass(t *testing.T) {
	iso := harness(t)
	h := newMemHost()
	runJSCases(t, iso, h, []jsCase{
		{"self", `[self === globalThis, typeof self.fetch, self.crypto === crypto]`, `[true,"function",true]`},
		{"self assignable", `(() => { self = 1; const v = globalThis.self; self = globalThis; return v; })()`, `1`},
		{"crypto instanceof", `[crypto instanceof Crypto, crypto.subtle instanceof SubtleCrypto, Object.prototype.toString.call(crypto), typeof crypto.randomUUID(), crypto.getRandomValues(new Uint8Array(4)).length]`,
			`[true,true,"[object Crypto]","string",4]`},
		{"illegal constructors", `[() => new Crypto(), () => new SubtleCrypto(), () => Reflect.construct(Crypto, [])].map((f) => { try { f(); return "no error"; } catch (e) { return e.name + ": " + e.message; } })`,
			`["TypeError: Illegal constructor","TypeError: Illegal constructor","TypeError: Illegal constructor"]`},
		{"report error", `(() => { const r = reportError(new RangeError("lost")); reportError("plain"); return [r === undefined, typeof reportError]; })()`, `[true,"function"]`},
		{"report error no argument", `(() => { try { reportError(); return "no error"; } catch (e) { return e.name; } })()`, `"TypeError"`},
	})
	logs := strings.Join(h.logs, "\n")
	for _, want := range []string{"error: Uncaught RangeError: lost", "error: Uncaught plain"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs %q lack %q", logs, want)
		}
	}
}
