package isolate

import (
	"errors"
	"testing"
)

// FuzzSubtleCall feeds crypto.subtle host calls arbitrary ops, parameter
// documents and buffers: each answers a value or a *HostError, never a
// panic or another kind of error (which would not be a clean JS exception).
func FuzzSubtleCall(f *testing.F) {
	seeds := []struct{ op, params string }{
		{"import", `{"alg":"HMAC","hash":"SHA-256","format":"raw","usages":["sign"]}`},
		{"import", `{"alg":"HMAC","hash":"SHA-256","format":"jwk","usages":["sign"]}`},
		{"import", `{"alg":"ECDSA","curve":"P-256","format":"raw"}`},
		{"import", `{"alg":"ECDSA","curve":"P-256","format":"jwk"}`},
		{"import", `{"alg":"Ed25519","format":"spki"}`},
		{"import", `{"alg":"Ed25519","format":"pkcs8"}`},
		{"import", `{"alg":"RSASSA-PKCS1-v1_5","hash":"SHA-256","format":"jwk"}`},
		{"import", `{"alg":"AES-GCM","format":"raw"}`},
		{"export", `{"alg":"ECDSA","curve":"P-256","format":"jwk","type":"private"}`},
		{"export", `{"alg":"Ed25519","format":"raw","type":"public"}`},
		{"sign", `{"alg":"ECDSA","hash":"SHA-256","type":"private"}`},
		{"sign", `{"alg":"RSASSA-PKCS1-v1_5","hash":"SHA-1","type":"private"}`},
		{"verify", `{"alg":"Ed25519","type":"public"}`},
		{"verify", `{"alg":"HMAC","hash":"SHA-512","type":"secret"}`},
		{"encrypt", `{"alg":"AES-GCM","tagLength":96}`},
		{"decrypt", `{"alg":"AES-GCM"}`},
		{"deriveBits", `{"alg":"HKDF","hash":"SHA-256","length":256}`},
		{"deriveBits", `{"alg":"PBKDF2","hash":"SHA-1","length":160,"iterations":2}`},
		{"generate", `{"alg":"AES-GCM","length":128}`},
		{"generate", `{"alg":"HMAC","hash":"SHA-1","length":-8}`},
		{"timingSafeEqual", `{}`},
		{"nope", `{`},
	}
	ed := []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}
	ed = append(ed, make([]byte, 32)...)
	for _, s := range seeds {
		f.Add(s.op, s.params, make([]byte, 16), make([]byte, 12), []byte("data"))
		f.Add(s.op, s.params, ed, []byte(`{"kty":"oct","k":"a2V5"}`), []byte{})
		f.Add(s.op, s.params, []byte(`{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}`), []byte(nil), []byte{1})
	}
	f.Fuzz(func(t *testing.T, op, params string, b0, b1, b2 []byte) {
		res, err := subtleCall(op, params, [][]byte{b0, b1, b2, nil})
		if err != nil {
			var he *HostError
			if !errors.As(err, &he) {
				t.Fatalf("%s %s: error %T %v is not a HostError", op, params, err, err)
			}
			return
		}
		switch res.(type) {
		case []byte, string, float64, []any:
		default:
			t.Fatalf("%s %s: result of type %T", op, params, res)
		}
	})
}
