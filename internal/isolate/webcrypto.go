package isolate

// webcrypto.go is the Go side of crypto.subtle (webcrypto.js holds the JS
// side). The JS side normalizes algorithms and enforces a CryptoKey's
// usages and extractability; these host calls do the cryptography with Go's
// standard library and are stateless: every call is handed the key
// material it needs. Key material lives in the JS heap as bytes in a
// canonical form (raw bytes for secret keys, PKIX/SPKI DER for public keys,
// PKCS #8 DER for private keys), so a CryptoKey survives a heap snapshot
// and restore like any other value, and no key registry on the Go side has
// to follow a session across hibernation.
//
// Every host call is bounded: key documents by maxKeyData, RSA moduli by
// minRSABits..maxRSABits, PBKDF2 by maxPBKDF2Iterations and
// maxPBKDF2Bits, generated RSA keys by maxRSAGenBits; data and signatures
// by the host call argument cap (Config.MaxBodyBytes). A host call is not
// preempted by the stop flag, so these bounds are what keep one call's CPU
// time near its limits.

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"hash"
	"math/big"
)

const (
	// maxKeyData bounds a key document (raw, JWK, SPKI, PKCS #8) handed to
	// importKey; an 8192-bit RSA private key in JWK form is about 6 KiB.
	maxKeyData = 64 << 10
	// maxDERKey bounds an SPKI or PKCS #8 document before it is parsed (an
	// 8192-bit RSA private key is about 4.8 KiB): Go validates an RSA
	// private key while parsing it, which for a huge modulus takes seconds.
	maxDERKey = 8 << 10
	// minRSABits and maxRSABits bound imported RSA moduli (Go refuses
	// fewer than 1024 bits; more than 8192 only costs time).
	minRSABits = 1024
	maxRSABits = 8192
	// maxRSAGenBits bounds generateKey's modulusLength: a 4096-bit key
	// takes about a second on one core, and more is not preemptible.
	maxRSAGenBits = 4096
	// maxPBKDF2Iterations is the iteration cap Cloudflare Workers has too.
	maxPBKDF2Iterations = 100_000
	// maxPBKDF2Bits bounds PBKDF2 output: each hash-sized block costs
	// every iteration again.
	maxPBKDF2Bits = 4096
	// maxGCMIV bounds an AES-GCM iv.
	maxGCMIV = 1024
	// maxSecretBits bounds a generated HMAC key.
	maxSecretBits = 8192
)

// subtleParams are the scalar arguments of a crypto.subtle host call,
// passed as one JSON document after the op name; buffers follow it.
type subtleParams struct {
	Alg            string   `json:"alg"`            // normalized name: HMAC, AES-GCM, ECDSA, Ed25519, RSASSA-PKCS1-v1_5, HKDF, PBKDF2
	Hash           string   `json:"hash"`           // SHA-1, SHA-256, SHA-384, SHA-512
	Format         string   `json:"format"`         // raw, spki, pkcs8, jwk
	Type           string   `json:"type"`           // the key's type: secret, public, private
	Curve          string   `json:"curve"`          // P-256, P-384, P-521
	Length         int      `json:"length"`         // bits
	Iterations     int      `json:"iterations"`     // PBKDF2
	TagLength      int      `json:"tagLength"`      // AES-GCM, bits
	ModulusLength  int      `json:"modulusLength"`  // RSA generateKey
	Extractable    bool     `json:"extractable"`    // importKey (JWK ext) and exportKey (JWK)
	Usages         []string `json:"usages"`         // importKey (JWK key_ops) and exportKey (JWK)
	PublicExponent []byte   `json:"publicExponent"` // RSA generateKey, big-endian
}

// DOMException names the JS side rethrows as DOMException instances.
func dataErr(format string, a ...any) error   { return HostErrorf("DataError", format, a...) }
func opErr(format string, a ...any) error     { return HostErrorf("OperationError", format, a...) }
func notSupp(format string, a ...any) error   { return HostErrorf("NotSupportedError", format, a...) }
func invAccess(format string, a ...any) error { return HostErrorf("InvalidAccessError", format, a...) }

type hashAlg struct {
	New   func() hash.Hash
	Hash  crypto.Hash
	Block int // block size in bytes: HMAC's default key length
}

var hashes = map[string]hashAlg{
	"SHA-1":   {sha1.New, crypto.SHA1, 64},
	"SHA-256": {sha256.New, crypto.SHA256, 64},
	"SHA-384": {sha512.New384, crypto.SHA384, 128},
	"SHA-512": {sha512.New, crypto.SHA512, 128},
}

func hashOf(name string) (hashAlg, error) {
	h, ok := hashes[name]
	if !ok {
		return hashAlg{}, notSupp("hash %q", name)
	}
	return h, nil
}

var curves = map[string]elliptic.Curve{
	"P-256": elliptic.P256(),
	"P-384": elliptic.P384(),
	"P-521": elliptic.P521(),
}

func curveOf(name string) (elliptic.Curve, error) {
	c, ok := curves[name]
	if !ok {
		return nil, notSupp("named curve %q", name)
	}
	return c, nil
}

// subtleCall runs one crypto.subtle op: op names it, params is a JSON
// subtleParams, bufs are its buffers (which ones depends on op). Every
// error is a *HostError the guest sees as a DOMException, TypeError or
// plain Error; none is fatal to the isolate.
func subtleCall(op string, params string, bufs [][]byte) (any, error) {
	var p subtleParams
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		return nil, HostErrorf("TypeError", "crypto.subtle: bad parameters: %v", err)
	}
	buf := func(i int) []byte {
		if i < len(bufs) && bufs[i] != nil {
			return bufs[i]
		}
		return []byte{}
	}
	switch op {
	case "import":
		return subtleImport(p, buf(0))
	case "export":
		return subtleExport(p, buf(0))
	case "generate":
		return subtleGenerate(p)
	case "sign":
		return subtleSign(p, buf(0), buf(1))
	case "verify":
		ok, err := subtleVerify(p, buf(0), buf(1), buf(2))
		if err != nil || !ok {
			return float64(0), err
		}
		return float64(1), nil
	case "encrypt", "decrypt":
		return subtleGCM(p, op == "encrypt", buf(0), buf(1), buf(2), buf(3))
	case "deriveBits":
		return subtleDeriveBits(p, buf(0), buf(1), buf(2))
	case "timingSafeEqual":
		a, b := buf(0), buf(1)
		if len(a) != len(b) {
			return nil, HostErrorf("TypeError", "timingSafeEqual: the inputs are %d and %d bytes; they must be the same length", len(a), len(b))
		}
		return float64(subtle.ConstantTimeCompare(a, b)), nil
	}
	return nil, notSupp("crypto.subtle operation %q", op)
}

func subtleSign(p subtleParams, key, data []byte) ([]byte, error) {
	switch p.Alg {
	case "HMAC":
		h, err := hashOf(p.Hash)
		if err != nil {
			return nil, err
		}
		m := hmac.New(h.New, key)
		m.Write(data)
		return m.Sum(nil), nil
	case "ECDSA":
		h, err := hashOf(p.Hash)
		if err != nil {
			return nil, err
		}
		k, err := parsePrivate[*ecdsa.PrivateKey](key)
		if err != nil {
			return nil, err
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digestOf(h, data))
		if err != nil {
			return nil, opErr("ECDSA sign: %v", err)
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
		return sig, nil
	case "Ed25519":
		k, err := parsePrivate[ed25519.PrivateKey](key)
		if err != nil {
			return nil, err
		}
		return ed25519.Sign(k, data), nil
	case "RSASSA-PKCS1-v1_5":
		h, err := hashOf(p.Hash)
		if err != nil {
			return nil, err
		}
		k, err := parsePrivate[*rsa.PrivateKey](key)
		if err != nil {
			return nil, err
		}
		sig, err := rsa.SignPKCS1v15(nil, k, h.Hash, digestOf(h, data))
		if err != nil {
			return nil, opErr("RSASSA-PKCS1-v1_5 sign: %v", err)
		}
		return sig, nil
	}
	return nil, notSupp("sign with %q", p.Alg)
}

// subtleVerify reports whether sig is data's signature. A signature of the
// wrong length or shape is false, not an error, as WebCrypto specifies.
func subtleVerify(p subtleParams, key, sig, data []byte) (bool, error) {
	switch p.Alg {
	case "HMAC":
		want, err := subtleSign(p, key, data)
		if err != nil {
			return false, err
		}
		return hmac.Equal(want, sig), nil
	case "ECDSA":
		h, err := hashOf(p.Hash)
		if err != nil {
			return false, err
		}
		k, err := parsePublic[*ecdsa.PublicKey](key)
		if err != nil {
			return false, err
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return false, nil
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(k, digestOf(h, data), r, s), nil
	case "Ed25519":
		k, err := parsePublic[ed25519.PublicKey](key)
		if err != nil {
			return false, err
		}
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k, data, sig), nil
	case "RSASSA-PKCS1-v1_5":
		h, err := hashOf(p.Hash)
		if err != nil {
			return false, err
		}
		k, err := parsePublic[*rsa.PublicKey](key)
		if err != nil {
			return false, err
		}
		return rsa.VerifyPKCS1v15(k, h.Hash, digestOf(h, data), sig) == nil, nil
	}
	return false, notSupp("verify with %q", p.Alg)
}

func digestOf(h hashAlg, data []byte) []byte {
	d := h.New()
	d.Write(data)
	return d.Sum(nil)
}

// subtleGCM encrypts or decrypts with AES-GCM. Go's GCM takes a custom
// nonce size or a custom tag size, not both: a tag shorter than 128 bits
// needs the standard 96-bit iv.
func subtleGCM(p subtleParams, seal bool, key, iv, data, aad []byte) ([]byte, error) {
	if p.Alg != "AES-GCM" {
		return nil, notSupp("encrypt and decrypt with %q", p.Alg)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, dataErr("AES-GCM key: %v", err)
	}
	tag := p.TagLength
	if tag == 0 {
		tag = 128
	}
	switch tag {
	case 96, 104, 112, 120, 128:
	case 32, 64:
		return nil, notSupp("AES-GCM tagLength %d", tag)
	default:
		return nil, opErr("AES-GCM tagLength %d is not one of 32, 64, 96, 104, 112, 120, 128", tag)
	}
	if len(iv) == 0 || len(iv) > maxGCMIV {
		return nil, opErr("AES-GCM iv is %d bytes; it must be 1 to %d", len(iv), maxGCMIV)
	}
	var g cipher.AEAD
	switch {
	case tag == 128:
		g, err = cipher.NewGCMWithNonceSize(block, len(iv))
	case len(iv) == 12:
		g, err = cipher.NewGCMWithTagSize(block, tag/8)
	default:
		return nil, notSupp("AES-GCM with a %d-bit tag needs a 12-byte iv", tag)
	}
	if err != nil {
		return nil, opErr("AES-GCM: %v", err)
	}
	if seal {
		return g.Seal(nil, iv, data, aad), nil
	}
	if len(data) < g.Overhead() {
		return nil, opErr("AES-GCM ciphertext is %d bytes, shorter than its %d-byte tag", len(data), g.Overhead())
	}
	out, err := g.Open(nil, iv, data, aad)
	if err != nil {
		return nil, opErr("AES-GCM decryption failed: the data or its tag is not authentic")
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

func subtleDeriveBits(p subtleParams, key, salt, info []byte) ([]byte, error) {
	h, err := hashOf(p.Hash)
	if err != nil {
		return nil, err
	}
	if p.Length <= 0 || p.Length%8 != 0 {
		return nil, opErr("%s length %d is not a positive multiple of 8", p.Alg, p.Length)
	}
	n := p.Length / 8
	switch p.Alg {
	case "HKDF":
		if n > 255*h.New().Size() {
			return nil, opErr("HKDF length %d is over 255 hash lengths", p.Length)
		}
		out, err := hkdf.Key(h.New, key, salt, string(info), n)
		if err != nil {
			return nil, opErr("HKDF: %v", err)
		}
		return out, nil
	case "PBKDF2":
		if p.Iterations <= 0 || p.Iterations > maxPBKDF2Iterations {
			return nil, opErr("PBKDF2 iterations %d: it must be 1 to %d", p.Iterations, maxPBKDF2Iterations)
		}
		if p.Length > maxPBKDF2Bits {
			return nil, opErr("PBKDF2 length %d is over %d bits", p.Length, maxPBKDF2Bits)
		}
		out, err := pbkdf2.Key(h.New, string(key), salt, p.Iterations, n)
		if err != nil {
			return nil, opErr("PBKDF2: %v", err)
		}
		return out, nil
	}
	return nil, notSupp("deriveBits with %q", p.Alg)
}

// subtleGenerate makes a key: ["secret", raw] or ["public", spki,
// "private", pkcs8].
func subtleGenerate(p subtleParams) (any, error) {
	switch p.Alg {
	case "HMAC":
		h, err := hashOf(p.Hash)
		if err != nil {
			return nil, err
		}
		bits := p.Length
		if bits == 0 {
			bits = h.Block * 8
		}
		if bits < 0 || bits%8 != 0 || bits > maxSecretBits {
			return nil, opErr("HMAC key length %d: it must be a positive multiple of 8 up to %d", bits, maxSecretBits)
		}
		return []any{"secret", randomBytes(bits / 8)}, nil
	case "AES-GCM":
		if p.Length != 128 && p.Length != 192 && p.Length != 256 {
			return nil, opErr("AES-GCM key length %d is not 128, 192 or 256", p.Length)
		}
		return []any{"secret", randomBytes(p.Length / 8)}, nil
	case "ECDSA":
		c, err := curveOf(p.Curve)
		if err != nil {
			return nil, err
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, opErr("ECDSA generate: %v", err)
		}
		return keyPair(k.Public(), k)
	case "Ed25519":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, opErr("Ed25519 generate: %v", err)
		}
		return keyPair(pub, priv)
	case "RSASSA-PKCS1-v1_5":
		if p.ModulusLength < 2048 || p.ModulusLength > maxRSAGenBits || p.ModulusLength%8 != 0 {
			return nil, opErr("RSA modulusLength %d: it must be a multiple of 8 from 2048 to %d", p.ModulusLength, maxRSAGenBits)
		}
		if e := new(big.Int).SetBytes(p.PublicExponent); !e.IsInt64() || e.Int64() != 65537 {
			return nil, opErr("RSA publicExponent must be 65537 ([1, 0, 1])")
		}
		k, err := rsa.GenerateKey(rand.Reader, p.ModulusLength)
		if err != nil {
			return nil, opErr("RSA generate: %v", err)
		}
		return keyPair(k.Public(), k)
	}
	return nil, notSupp("generateKey for %q", p.Alg)
}

func keyPair(pub crypto.PublicKey, priv crypto.PrivateKey) (any, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, opErr("encode public key: %v", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, opErr("encode private key: %v", err)
	}
	return []any{"public", spki, "private", pkcs8}, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// parsePrivate and parsePublic decode key material the JS side holds. It
// was written by this file, so a failure means the guest handed a
// CryptoKey's slots something else: an OperationError.
func parsePrivate[K any](der []byte) (K, error) {
	var zero K
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return zero, invAccess("the key is not a private key of this algorithm")
	}
	kk, ok := k.(K)
	if !ok {
		return zero, invAccess("the key is not a private key of this algorithm")
	}
	return kk, nil
}

func parsePublic[K any](der []byte) (K, error) {
	var zero K
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return zero, invAccess("the key is not a public key of this algorithm")
	}
	kk, ok := k.(K)
	if !ok {
		return zero, invAccess("the key is not a public key of this algorithm")
	}
	return kk, nil
}
