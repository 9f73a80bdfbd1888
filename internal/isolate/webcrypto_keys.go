package isolate

// webcrypto_keys.go: crypto.subtle importKey and exportKey (raw, spki,
// pkcs8, jwk), turning key documents into the canonical material
// webcrypto.go works with and back.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"
)

// jwk is a JSON Web Key (RFC 7517) as WebCrypto imports and exports it.
type jwk struct {
	Kty    string   `json:"kty"`
	Use    string   `json:"use,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	Alg    string   `json:"alg,omitempty"`
	Ext    *bool    `json:"ext,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	K      string   `json:"k,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	D      string   `json:"d,omitempty"`
	P      string   `json:"p,omitempty"`
	Q      string   `json:"q,omitempty"`
	DP     string   `json:"dp,omitempty"`
	DQ     string   `json:"dq,omitempty"`
	QI     string   `json:"qi,omitempty"`
}

// keyMeta is what importKey learns about a key beyond its material.
type keyMeta struct {
	Length         int    `json:"length,omitempty"`        // secret keys, bits
	ModulusLength  int    `json:"modulusLength,omitempty"` // RSA
	PublicExponent []byte `json:"publicExponent,omitempty"`
}

func b64u(s, field string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, dataErr("JWK %q is not base64url: %v", field, err)
	}
	return b, nil
}

func enc64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkAlg is the JWK "alg" for an algorithm, its hash and its key length.
func jwkAlg(alg, hash, curve string, bits int) string {
	n := strings.TrimPrefix(hash, "SHA-")
	switch alg {
	case "HMAC":
		return "HS" + n
	case "AES-GCM":
		return "A" + strconv.Itoa(bits) + "GCM"
	case "ECDSA":
		return map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[curve]
	case "Ed25519":
		return "Ed25519"
	case "RSASSA-PKCS1-v1_5":
		return "RS" + n
	}
	return ""
}

// subtleImport returns [type, material, meta JSON].
func subtleImport(p subtleParams, data []byte) (any, error) {
	if len(data) > maxKeyData {
		return nil, dataErr("key data is %d bytes; the limit is %d", len(data), maxKeyData)
	}
	var j jwk
	if p.Format == "jwk" {
		if err := json.Unmarshal(data, &j); err != nil {
			return nil, dataErr("JWK: %v", err)
		}
		if j.Ext != nil && !*j.Ext && p.Extractable {
			return nil, dataErr("JWK ext is false, and the key is imported as extractable")
		}
		for _, u := range p.Usages {
			if j.KeyOps != nil && !slices.Contains(j.KeyOps, u) {
				return nil, dataErr("JWK key_ops %v do not include the usage %q", j.KeyOps, u)
			}
		}
	} else if p.Format != "raw" && p.Format != "spki" && p.Format != "pkcs8" {
		return nil, HostErrorf("TypeError", "key format %q is not raw, spki, pkcs8 or jwk", p.Format)
	}
	switch p.Alg {
	case "HMAC", "AES-GCM", "HKDF", "PBKDF2":
		return importSecret(p, data, &j)
	case "ECDSA", "Ed25519", "RSASSA-PKCS1-v1_5":
		return importAsymmetric(p, data, &j)
	}
	return nil, notSupp("importKey for %q", p.Alg)
}

func importSecret(p subtleParams, data []byte, j *jwk) (any, error) {
	key := data
	switch p.Format {
	case "raw":
	case "jwk":
		if p.Alg == "HKDF" || p.Alg == "PBKDF2" {
			return nil, notSupp("%s keys import only as raw", p.Alg)
		}
		if j.Kty != "oct" {
			return nil, dataErr("JWK kty %q: a secret key is \"oct\"", j.Kty)
		}
		if j.K == "" {
			return nil, dataErr("JWK has no \"k\"")
		}
		var err error
		if key, err = b64u(j.K, "k"); err != nil {
			return nil, err
		}
		use := map[string]string{"HMAC": "sig", "AES-GCM": "enc"}[p.Alg]
		if j.Use != "" && j.Use != use {
			return nil, dataErr("JWK use %q: %s keys are %q", j.Use, p.Alg, use)
		}
		if want := jwkAlg(p.Alg, p.Hash, "", len(key)*8); j.Alg != "" && j.Alg != want {
			return nil, dataErr("JWK alg %q does not match %s (%q)", j.Alg, p.Alg, want)
		}
	default:
		return nil, notSupp("%s keys do not import as %s", p.Alg, p.Format)
	}
	bits := len(key) * 8
	switch p.Alg {
	case "AES-GCM":
		if bits != 128 && bits != 192 && bits != 256 {
			return nil, dataErr("an AES key is 16, 24 or 32 bytes, not %d", len(key))
		}
	case "HMAC":
		if _, err := hashOf(p.Hash); err != nil {
			return nil, err
		}
		if len(key) == 0 {
			return nil, dataErr("an HMAC key is not empty")
		}
		if p.Length != 0 {
			if p.Length > bits || p.Length <= bits-8 {
				return nil, dataErr("HMAC length %d does not match a %d-byte key", p.Length, len(key))
			}
			bits = p.Length
		}
	}
	meta, _ := json.Marshal(keyMeta{Length: bits})
	return []any{"secret", bytes.Clone(key), string(meta)}, nil
}

func importAsymmetric(p subtleParams, data []byte, j *jwk) (any, error) {
	var pub crypto.PublicKey
	var priv crypto.PrivateKey
	var err error
	if (p.Format == "spki" || p.Format == "pkcs8") && len(data) > maxDERKey {
		return nil, dataErr("%s key data is %d bytes; the limit is %d", p.Format, len(data), maxDERKey)
	}
	switch p.Format {
	case "raw":
		switch p.Alg {
		case "ECDSA":
			c, err := curveOf(p.Curve)
			if err != nil {
				return nil, err
			}
			if pub, err = ecdsa.ParseUncompressedPublicKey(c, data); err != nil {
				return nil, dataErr("raw %s public key: %v", p.Curve, err)
			}
		case "Ed25519":
			if len(data) != ed25519.PublicKeySize {
				return nil, dataErr("a raw Ed25519 public key is 32 bytes, not %d", len(data))
			}
			pub = ed25519.PublicKey(bytes.Clone(data))
		default:
			return nil, notSupp("%s keys do not import as raw", p.Alg)
		}
	case "spki":
		if pub, err = x509.ParsePKIXPublicKey(data); err != nil {
			return nil, dataErr("spki: %v", err)
		}
	case "pkcs8":
		if priv, err = x509.ParsePKCS8PrivateKey(data); err != nil {
			return nil, dataErr("pkcs8: %v", err)
		}
	case "jwk":
		if pub, priv, err = jwkKey(p, j); err != nil {
			return nil, err
		}
	}
	if priv != nil {
		pub = priv.(interface{ Public() crypto.PublicKey }).Public()
	}
	var meta keyMeta
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Alg != "ECDSA" {
			return nil, dataErr("the key is an EC key, not %s", p.Alg)
		}
		if k.Curve.Params().Name != p.Curve {
			return nil, dataErr("the key is on %s, not %s", k.Curve.Params().Name, p.Curve)
		}
	case ed25519.PublicKey:
		if p.Alg != "Ed25519" {
			return nil, dataErr("the key is an Ed25519 key, not %s", p.Alg)
		}
	case *rsa.PublicKey:
		if p.Alg != "RSASSA-PKCS1-v1_5" {
			return nil, dataErr("the key is an RSA key, not %s", p.Alg)
		}
		if _, err := hashOf(p.Hash); err != nil {
			return nil, err
		}
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return nil, dataErr("the RSA modulus is %d bits; it must be %d to %d", n, minRSABits, maxRSABits)
		}
		meta.ModulusLength = k.N.BitLen()
		meta.PublicExponent = big.NewInt(int64(k.E)).Bytes()
	default:
		return nil, dataErr("the key is a %T, not a %s key", pub, p.Alg)
	}
	mj, _ := json.Marshal(meta)
	if priv != nil {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, dataErr("pkcs8: %v", err)
		}
		return []any{"private", der, string(mj)}, nil
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, dataErr("spki: %v", err)
	}
	return []any{"public", der, string(mj)}, nil
}

// jwkKey decodes an EC, OKP or RSA JWK.
func jwkKey(p subtleParams, j *jwk) (crypto.PublicKey, crypto.PrivateKey, error) {
	want := jwkAlg(p.Alg, p.Hash, p.Curve, 0)
	if j.Alg != "" && j.Alg != want && !(p.Alg == "Ed25519" && j.Alg == "EdDSA") {
		return nil, nil, dataErr("JWK alg %q does not match %s (%q)", j.Alg, p.Alg, want)
	}
	if j.Use != "" && j.Use != "sig" {
		return nil, nil, dataErr("JWK use %q: signing keys are \"sig\"", j.Use)
	}
	switch p.Alg {
	case "ECDSA":
		return jwkEC(p, j)
	case "Ed25519":
		return jwkOKP(j)
	case "RSASSA-PKCS1-v1_5":
		return jwkRSA(j)
	}
	return nil, nil, notSupp("JWK import for %q", p.Alg)
}

// fields decodes the named base64url members of j, each required.
func (j *jwk) fields(names ...string) ([][]byte, error) {
	vals := map[string]string{"x": j.X, "y": j.Y, "d": j.D, "n": j.N, "e": j.E, "p": j.P, "q": j.Q, "dp": j.DP, "dq": j.DQ, "qi": j.QI}
	out := make([][]byte, len(names))
	for i, n := range names {
		if vals[n] == "" {
			return nil, dataErr("JWK has no %q", n)
		}
		b, err := b64u(vals[n], n)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func jwkEC(p subtleParams, j *jwk) (crypto.PublicKey, crypto.PrivateKey, error) {
	if j.Kty != "EC" || j.Crv != p.Curve {
		return nil, nil, dataErr("JWK kty %q crv %q: want \"EC\" and %q", j.Kty, j.Crv, p.Curve)
	}
	c, err := curveOf(p.Curve)
	if err != nil {
		return nil, nil, err
	}
	xy, err := j.fields("x", "y")
	if err != nil {
		return nil, nil, err
	}
	size := (c.Params().BitSize + 7) / 8
	if len(xy[0]) != size || len(xy[1]) != size {
		return nil, nil, dataErr("JWK x and y of a %s key are %d bytes", p.Curve, size)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(c, slices.Concat([]byte{4}, xy[0], xy[1]))
	if err != nil {
		return nil, nil, dataErr("JWK EC point: %v", err)
	}
	if j.D == "" {
		return pub, nil, nil
	}
	d, err := j.fields("d")
	if err != nil {
		return nil, nil, err
	}
	priv, err := ecdsa.ParseRawPrivateKey(c, d[0])
	if err != nil {
		return nil, nil, dataErr("JWK d: %v", err)
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, nil, dataErr("JWK d does not match x and y")
	}
	return nil, priv, nil
}

func jwkOKP(j *jwk) (crypto.PublicKey, crypto.PrivateKey, error) {
	if j.Kty != "OKP" || j.Crv != "Ed25519" {
		return nil, nil, dataErr("JWK kty %q crv %q: want \"OKP\" and \"Ed25519\"", j.Kty, j.Crv)
	}
	x, err := j.fields("x")
	if err != nil {
		return nil, nil, err
	}
	if len(x[0]) != ed25519.PublicKeySize {
		return nil, nil, dataErr("JWK x of an Ed25519 key is 32 bytes, not %d", len(x[0]))
	}
	if j.D == "" {
		return ed25519.PublicKey(x[0]), nil, nil
	}
	d, err := j.fields("d")
	if err != nil {
		return nil, nil, err
	}
	if len(d[0]) != ed25519.SeedSize {
		return nil, nil, dataErr("JWK d of an Ed25519 key is 32 bytes, not %d", len(d[0]))
	}
	priv := ed25519.NewKeyFromSeed(d[0])
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), x[0]) {
		return nil, nil, dataErr("JWK d does not match x")
	}
	return nil, priv, nil
}

func jwkRSA(j *jwk) (crypto.PublicKey, crypto.PrivateKey, error) {
	if j.Kty != "RSA" {
		return nil, nil, dataErr("JWK kty %q: want \"RSA\"", j.Kty)
	}
	ne, err := j.fields("n", "e")
	if err != nil {
		return nil, nil, err
	}
	if len(ne[0])*8 > maxRSABits+8 || len(ne[1]) > 4 {
		return nil, nil, dataErr("JWK n or e is too long")
	}
	e := new(big.Int).SetBytes(ne[1])
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(ne[0]), E: int(e.Int64())}
	if j.D == "" {
		return pub, nil, nil
	}
	f, err := j.fields("d", "p", "q", "dp", "dq", "qi")
	if err != nil {
		return nil, nil, dataErr("a private RSA JWK needs d, p, q, dp, dq and qi: %w", err)
	}
	bi := func(b []byte) *big.Int { return new(big.Int).SetBytes(b) }
	if n := pub.N.BitLen(); n < minRSABits || n > maxRSABits {
		return nil, nil, dataErr("the RSA modulus is %d bits; it must be %d to %d", n, minRSABits, maxRSABits)
	}
	priv := &rsa.PrivateKey{PublicKey: *pub, D: bi(f[0]), Primes: []*big.Int{bi(f[1]), bi(f[2])}}
	if err := priv.Validate(); err != nil {
		return nil, nil, dataErr("JWK RSA key: %v", err)
	}
	priv.Precompute()
	if priv.Precomputed.Dp.Cmp(bi(f[3])) != 0 || priv.Precomputed.Dq.Cmp(bi(f[4])) != 0 || priv.Precomputed.Qinv.Cmp(bi(f[5])) != 0 {
		return nil, nil, dataErr("JWK dp, dq or qi does not match the key")
	}
	return nil, priv, nil
}

// subtleExport returns the key in format: bytes, or a JWK as a JSON string.
func subtleExport(p subtleParams, material []byte) (any, error) {
	switch p.Alg {
	case "HMAC", "AES-GCM":
		switch p.Format {
		case "raw":
			return bytes.Clone(material), nil
		case "jwk":
			ext := p.Extractable
			return marshalJWK(jwk{Kty: "oct", K: enc64(material), Alg: jwkAlg(p.Alg, p.Hash, "", len(material)*8), KeyOps: p.Usages, Ext: &ext})
		}
		return nil, notSupp("%s keys do not export as %s", p.Alg, p.Format)
	case "ECDSA", "Ed25519", "RSASSA-PKCS1-v1_5":
	default:
		return nil, notSupp("exportKey for %q", p.Alg)
	}
	var pub crypto.PublicKey
	var priv crypto.PrivateKey
	var err error
	if p.Type == "private" {
		if priv, err = x509.ParsePKCS8PrivateKey(material); err != nil {
			return nil, opErr("the key material is not PKCS #8")
		}
		pub = priv.(interface{ Public() crypto.PublicKey }).Public()
	} else if pub, err = x509.ParsePKIXPublicKey(material); err != nil {
		return nil, opErr("the key material is not SPKI")
	}
	switch p.Format {
	case "spki":
		if priv != nil {
			return nil, invAccess("spki exports a public key; this key is private")
		}
		return bytes.Clone(material), nil
	case "pkcs8":
		if priv == nil {
			return nil, invAccess("pkcs8 exports a private key; this key is public")
		}
		return bytes.Clone(material), nil
	case "raw":
		if priv != nil {
			return nil, invAccess("raw exports a public key; this key is private")
		}
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			b, err := k.Bytes()
			if err != nil {
				return nil, opErr("EC point: %v", err)
			}
			return b, nil
		case ed25519.PublicKey:
			return bytes.Clone(k), nil
		}
		return nil, notSupp("%s keys do not export as raw", p.Alg)
	case "jwk":
		ext := p.Extractable
		j := jwk{Alg: jwkAlg(p.Alg, p.Hash, p.Curve, 0), KeyOps: p.Usages, Ext: &ext}
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			b, err := k.Bytes()
			if err != nil {
				return nil, opErr("EC point: %v", err)
			}
			n := (len(b) - 1) / 2
			j.Kty, j.Crv, j.X, j.Y = "EC", k.Curve.Params().Name, enc64(b[1:1+n]), enc64(b[1+n:])
			if pk, ok := priv.(*ecdsa.PrivateKey); ok {
				d, err := pk.Bytes()
				if err != nil {
					return nil, opErr("EC scalar: %v", err)
				}
				j.D = enc64(d)
			}
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", enc64(k)
			if pk, ok := priv.(ed25519.PrivateKey); ok {
				j.D = enc64(pk.Seed())
			}
		case *rsa.PublicKey:
			j.Kty, j.N, j.E = "RSA", enc64(k.N.Bytes()), enc64(big.NewInt(int64(k.E)).Bytes())
			if pk, ok := priv.(*rsa.PrivateKey); ok {
				if len(pk.Primes) != 2 {
					return nil, notSupp("JWK export of a multi-prime RSA key")
				}
				pk.Precompute()
				j.D, j.P, j.Q = enc64(pk.D.Bytes()), enc64(pk.Primes[0].Bytes()), enc64(pk.Primes[1].Bytes())
				j.DP, j.DQ, j.QI = enc64(pk.Precomputed.Dp.Bytes()), enc64(pk.Precomputed.Dq.Bytes()), enc64(pk.Precomputed.Qinv.Bytes())
			}
		}
		return marshalJWK(j)
	}
	return nil, HostErrorf("TypeError", "key format %q is not raw, spki, pkcs8 or jwk", p.Format)
}

func marshalJWK(j jwk) (any, error) {
	b, err := json.Marshal(j)
	if err != nil {
		return nil, opErr("JWK: %v", err)
	}
	return string(b), nil
}
