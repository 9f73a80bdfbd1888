package isolate

import (
	"context"
	"testing"
	"time"
)

// benchJS measures one request that evaluates expr in the harness.
func benchJS(b *testing.B, setup, expr string) {
	iso := harness(b)
	h := newMemHost()
	ctx := context.Background()
	if setup != "" {
		if _, err := iso.Fetch(ctx, Request{Method: "POST", URL: "http://test/", Body: []byte(setup)}, h); err != nil {
			b.Fatal(err)
		}
	}
	req := Request{Method: "POST", URL: "http://test/", Body: []byte(expr)}
	b.ResetTimer()
	for b.Loop() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if _, err := iso.Fetch(cctx, req, h); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}

// BenchmarkSubtleHMACVerify: one request importing nothing and verifying
// an HMAC-SHA256 webhook signature with a key made at setup.
func BenchmarkSubtleHMACVerify(b *testing.B) {
	benchJS(b, `(async () => { globalThis.k = await S.importKey("raw", utf8("secret"), {name: "HMAC", hash: "SHA-256"}, false, ["sign", "verify"]);
		globalThis.body = utf8("x".repeat(1024)); globalThis.sig = await S.sign("HMAC", k, body); })()`,
		`S.verify("HMAC", k, sig, body)`)
}

// BenchmarkSubtleECDSASign: ECDSA P-256 SHA-256 signing (the private key's
// PKCS #8 is parsed on each call).
func BenchmarkSubtleECDSASign(b *testing.B) {
	benchJS(b, `(async () => { globalThis.k = await S.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]); })()`,
		`S.sign({name: "ECDSA", hash: "SHA-256"}, k.privateKey, utf8("m")).then(() => 1)`)
}

// BenchmarkStructuredClonePlain and ...Rich: 1000 small objects, as JSON
// values and with a Date and a Map each.
func BenchmarkStructuredClonePlain(b *testing.B) {
	benchJS(b, `(globalThis.v = Array.from({length: 1000}, (_, i) => ({i, s: "x", a: [1, 2]})), 1)`, `(structuredClone(v), 1)`)
}

func BenchmarkStructuredCloneRich(b *testing.B) {
	benchJS(b, `(globalThis.v = Array.from({length: 1000}, (_, i) => ({i, d: new Date(i), m: new Map([[i, "x"]])})), 1)`, `(structuredClone(v), 1)`)
}

// BenchmarkJSONRoundTripPlain is the yardstick for the two above: what
// structuredClone was before (JSON.parse(JSON.stringify(v))).
func BenchmarkJSONRoundTripPlain(b *testing.B) {
	benchJS(b, `(globalThis.v = Array.from({length: 1000}, (_, i) => ({i, s: "x", a: [1, 2]})), 1)`, `(JSON.parse(JSON.stringify(v)), 1)`)
}
