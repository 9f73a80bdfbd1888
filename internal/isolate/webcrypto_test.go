package isolate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// jsHarness is a module that evaluates the JS expression in each request's
// body (which may await) with a few helpers in scope, answering
// JSON.stringify of the result, or "throw Name: message".
const jsHarness = `
globalThis.hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
globalThis.unhex = (s) => new Uint8Array(s.match(/../g) ? s.match(/../g).map((x) => parseInt(x, 16)) : []);
globalThis.utf8 = (s) => new TextEncoder().encode(s);
globalThis.b64u = (s) => btoa(String.fromCharCode(...unhex(s))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
globalThis.unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
globalThis.S = crypto.subtle;
globalThis.err = async (p) => { try { await p; return "no error"; } catch (e) { return e.name + (e instanceof DOMException ? "" : " (not a DOMException)"); } };
export default {
	async fetch(req) {
		const src = await req.text();
		try {
			const v = await (0, eval)("(async () => (" + src + "))()");
			return new Response(JSON.stringify(v === undefined ? null : v));
		} catch (e) {
			return new Response("throw " + e.name + ": " + e.message);
		}
	},
};`

type jsCase struct{ name, expr, want string }

// runJSCases evaluates each case in one isolate (state kept between them).
func runJSCases(t *testing.T, iso *Isolate, h Host, cases []jsCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := iso.Fetch(ctxTimeout(t, 20*time.Second), Request{Method: "POST", URL: "http://test/", Body: []byte(c.expr)}, h)
			if err != nil {
				t.Fatalf("%s: %v", c.expr, err)
			}
			if got := string(resp.Body); got != c.want {
				t.Errorf("%s\n got %s\nwant %s", c.expr, got, c.want)
			}
		})
	}
}

func harness(t testing.TB) *Isolate {
	t.Helper()
	return newIsolate(t, jsHarness)
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestWebCryptoVectors checks crypto.subtle against published vectors:
// RFC 4231 and RFC 2202 (HMAC), RFC 8032 §7.1 (Ed25519), RFC 5869 (HKDF),
// RFC 6070 and RFC 7914 §11 (PBKDF2), the GCM spec's test cases 2-4
// (AES-GCM), RFC 6979 A.2.5 (ECDSA P-256 verify) and an OpenSSL
// RSASSA-PKCS1-v1_5 signature (testdata).
func TestWebCryptoVectors(t *testing.T) {
	hmac := func(hash, keyHex, dataExpr string) string {
		return `S.importKey("raw", unhex("` + keyHex + `"), {name: "HMAC", hash: "` + hash + `"}, false, ["sign", "verify"]).then(async (k) => hex(await S.sign("HMAC", k, ` + dataExpr + `)))`
	}
	hkdf := func(ikm, salt, info string, l int) string {
		return `S.importKey("raw", unhex("` + ikm + `"), "HKDF", false, ["deriveBits"]).then(async (k) => hex(await S.deriveBits({name: "HKDF", hash: "SHA-256", salt: unhex("` + salt + `"), info: unhex("` + info + `")}, k, ` + strconv.Itoa(l*8) + `)))`
	}
	pbkdf2 := func(hash, pw, salt string, c, l int) string {
		return `S.importKey("raw", utf8("` + pw + `"), "PBKDF2", false, ["deriveBits"]).then(async (k) => hex(await S.deriveBits({name: "PBKDF2", hash: "` + hash + `", salt: utf8("` + salt + `"), iterations: ` + strconv.Itoa(c) + `}, k, ` + strconv.Itoa(l*8) + `)))`
	}
	gcm := func(k, iv, p, a string) string {
		aad := ""
		if a != "" {
			aad = `, additionalData: unhex("` + a + `")`
		}
		return `S.importKey("raw", unhex("` + k + `"), "AES-GCM", false, ["encrypt", "decrypt"]).then(async (k) => {
			const p = {name: "AES-GCM", iv: unhex("` + iv + `")` + aad + `};
			const c = await S.encrypt(p, k, unhex("` + p + `"));
			return hex(c) + " " + (hex(await S.decrypt(p, k, c)) === "` + p + `");
		})`
	}
	ed := func(seed, pub, msg string) string {
		return `(async () => {
			const k = await S.importKey("jwk", {kty: "OKP", crv: "Ed25519", x: b64u("` + pub + `"), d: b64u("` + seed + `")}, "Ed25519", false, ["sign"]);
			const pk = await S.importKey("raw", unhex("` + pub + `"), "Ed25519", true, ["verify"]);
			const sig = await S.sign("Ed25519", k, unhex("` + msg + `"));
			return hex(sig) + " " + await S.verify("Ed25519", pk, sig, unhex("` + msg + `")) + " " + await S.verify("Ed25519", pk, sig, unhex("` + msg + `ff"));
		})()`
	}
	rsa, err := os.ReadFile("testdata/rsa-pkcs1v15-sha256.json")
	if err != nil {
		t.Fatal(err)
	}
	const (
		p3  = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
		c3  = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
		ux  = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
		uy  = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
		sig = "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
	)
	cases := []jsCase{
		{"hmac rfc4231 1 sha256", hmac("SHA-256", strings.Repeat("0b", 20), `utf8("Hi There")`), q("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")},
		{"hmac rfc4231 1 sha384", hmac("SHA-384", strings.Repeat("0b", 20), `utf8("Hi There")`), q("afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")},
		{"hmac rfc4231 1 sha512", hmac("SHA-512", strings.Repeat("0b", 20), `utf8("Hi There")`), q("87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854")},
		{"hmac rfc4231 2 sha256", hmac("SHA-256", "4a656665", `utf8("what do ya want for nothing?")`), q("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")},
		{"hmac rfc4231 2 sha512", hmac("SHA-512", "4a656665", `utf8("what do ya want for nothing?")`), q("164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")},
		{"hmac rfc4231 6 long key", hmac("SHA-256", strings.Repeat("aa", 131), `utf8("Test Using Larger Than Block-Size Key - Hash Key First")`), q("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")},
		{"hmac rfc2202 sha1", hmac("SHA-1", strings.Repeat("0b", 20), `utf8("Hi There")`), q("b617318655057264e28bc0b6fb378c8ef146be00")},
		{"hmac verify", `S.importKey("raw", utf8("Jefe"), {name: "HMAC", hash: "SHA-256"}, false, ["verify"]).then(async (k) => [
			await S.verify("HMAC", k, unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"), utf8("what do ya want for nothing?")),
			await S.verify("HMAC", k, unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3844"), utf8("what do ya want for nothing?")),
			await S.verify("HMAC", k, unhex("5bdc"), utf8("what do ya want for nothing?"))])`, "[true,false,false]"},
		{"ed25519 rfc8032 1", ed("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", ""),
			q("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b true false")},
		{"ed25519 rfc8032 2", ed("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72"),
			q("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00 true false")},
		{"ed25519 pkcs8", `S.importKey("pkcs8", unhex("302e020100300506032b657004220420" + "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), {name: "Ed25519"}, true, ["sign"]).then(async (k) => hex(await S.sign("Ed25519", k, new Uint8Array(0))).slice(0, 16) + " " + (await S.exportKey("jwk", k)).x)`,
			q("e5564300c360ac72 " + "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")},
		{"hkdf rfc5869 1", hkdf(strings.Repeat("0b", 22), "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42), q("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")},
		{"hkdf rfc5869 3", hkdf(strings.Repeat("0b", 22), "", "", 42), q("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")},
		{"pbkdf2 rfc6070 1", pbkdf2("SHA-1", "password", "salt", 1, 20), q("0c60c80f961f0e71f3a9b524af6012062fe037a6")},
		{"pbkdf2 rfc6070 2", pbkdf2("SHA-1", "password", "salt", 2, 20), q("ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")},
		{"pbkdf2 rfc6070 3", pbkdf2("SHA-1", "password", "salt", 4096, 20), q("4b007901b765489abead49d926f721d065a429c1")},
		{"pbkdf2 rfc6070 5", pbkdf2("SHA-1", "passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25), q("3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038")},
		{"pbkdf2 rfc7914 1", pbkdf2("SHA-256", "passwd", "salt", 1, 64), q("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")},
		{"pbkdf2 rfc7914 2", pbkdf2("SHA-256", "Password", "NaCl", 80000, 64), q("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d")},
		{"aes-gcm tc2", gcm(strings.Repeat("00", 16), strings.Repeat("00", 12), strings.Repeat("00", 16), ""), q("0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf true")},
		{"aes-gcm tc3", gcm("feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", p3, ""), q(c3 + "4d5c2af327cd64a62cf35abd2ba6fab4 true")},
		{"aes-gcm tc4 aad", gcm("feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", p3[:120], "feedfacedeadbeeffeedfacedeadbeefabaddad2"), q(c3[:120] + "5bc94fbc3221a5db94fae95ae7121a47 true")},
		{"ecdsa p256 rfc6979 verify", `(async () => {
			const jwk = await S.importKey("jwk", {kty: "EC", crv: "P-256", x: b64u("` + ux + `"), y: b64u("` + uy + `")}, {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]);
			const raw = await S.importKey("raw", unhex("04` + ux + uy + `"), {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]);
			const p = {name: "ECDSA", hash: "SHA-256"};
			return [await S.verify(p, jwk, unhex("` + sig + `"), utf8("sample")), await S.verify(p, raw, unhex("` + sig + `"), utf8("sample")),
				await S.verify(p, raw, unhex("` + sig + `"), utf8("samplE")), await S.verify(p, raw, unhex("` + sig[:64] + `"), utf8("sample")),
				hex(await S.exportKey("raw", jwk)) === "04` + ux + uy + `"];
		})()`, "[true,true,false,false,true]"},
		{"ecdsa p256 sign verify round trip", `(async () => {
			const d = b64u("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721");
			const priv = await S.importKey("jwk", {kty: "EC", crv: "P-256", x: b64u("` + ux + `"), y: b64u("` + uy + `"), d}, {name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]);
			const pub = await S.importKey("raw", unhex("04` + ux + uy + `"), {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]);
			const p = {name: "ECDSA", hash: "SHA-256"};
			const s = await S.sign(p, priv, utf8("sample"));
			const gen = await S.generateKey({name: "ECDSA", namedCurve: "P-256"}, true, ["sign", "verify"]);
			const s2 = await S.sign(p, gen.privateKey, utf8("x"));
			const spki = await S.importKey("spki", await S.exportKey("spki", gen.publicKey), {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]);
			const pk8 = await S.importKey("pkcs8", await S.exportKey("pkcs8", gen.privateKey), {name: "ECDSA", namedCurve: "P-256"}, false, ["sign"]);
			return [s.byteLength, await S.verify(p, pub, s, utf8("sample")), await S.verify(p, spki, s2, utf8("x")),
				await S.verify(p, spki, await S.sign(p, pk8, utf8("y")), utf8("y")), gen.publicKey.usages, gen.privateKey.usages, gen.publicKey.algorithm.namedCurve];
		})()`, `[64,true,true,true,["verify"],["sign"],"P-256"]`},
		{"rsassa-pkcs1-v1_5 openssl verify", `(async () => {
			const v = ` + string(rsa) + `;
			const alg = {name: "RSASSA-PKCS1-v1_5", hash: "SHA-256"};
			const pub = await S.importKey("spki", unb64(v.spki), alg, true, ["verify"]);
			const priv = await S.importKey("pkcs8", unb64(v.pkcs8), alg, true, ["sign"]);
			const mine = await S.sign("RSASSA-PKCS1-v1_5", priv, utf8(v.message));
			const jwk = await S.exportKey("jwk", priv);
			const back = await S.importKey("jwk", jwk, alg, false, ["sign"]);
			return [await S.verify("RSASSA-PKCS1-v1_5", pub, unb64(v.signature), utf8(v.message)),
				await S.verify("RSASSA-PKCS1-v1_5", pub, unb64(v.signature), utf8(v.message + "!")),
				btoa(String.fromCharCode(...new Uint8Array(mine))) === v.signature,
				hex(await S.sign("RSASSA-PKCS1-v1_5", back, utf8(v.message))) === hex(mine),
				pub.algorithm.modulusLength, Array.from(pub.algorithm.publicExponent), jwk.alg, jwk.kty];
		})()`, `[true,false,true,true,2048,[1,0,1],"RS256","RSA"]`},
	}
	runJSCases(t, harness(t), newMemHost(), cases)
}

// TestWebCryptoAPIClass covers the rest of the API surface: generateKey
// for each algorithm, JWK and raw round trips, deriveKey, algorithm and
// usages reporting, and digest.
func TestWebCryptoAPIClass(t *testing.T) {
	cases := []jsCase{
		{"hmac generate default length", `S.generateKey({name: "HMAC", hash: "SHA-512"}, true, ["sign"]).then(async (k) => [k.algorithm.length, (await S.exportKey("raw", k)).byteLength, k.type, k.extractable, k instanceof CryptoKey, String(k)])`,
			`[1024,128,"secret",true,true,"[object CryptoKey]"]`},
		{"hmac jwk round trip", `(async () => {
			const k = await S.importKey("jwk", {kty: "oct", k: "a2V5", alg: "HS256", ext: true, key_ops: ["sign", "verify"]}, {name: "HMAC", hash: {name: "SHA-256"}}, true, ["sign"]);
			const j = await S.exportKey("jwk", k);
			return [j.k, j.alg, j.key_ops, j.ext, k.algorithm.length];
		})()`, `["a2V5","HS256",["sign"],true,24]`},
		{"aes-gcm generate and round trip", `(async () => {
			const k = await S.generateKey({name: "AES-GCM", length: 256}, true, ["encrypt", "decrypt"]);
			const iv = crypto.getRandomValues(new Uint8Array(12));
			const c = await S.encrypt({name: "AES-GCM", iv, tagLength: 96}, k, utf8("secret text"));
			const p = new TextDecoder().decode(await S.decrypt({name: "AES-GCM", iv, tagLength: 96}, k, c));
			const j = await S.exportKey("jwk", k);
			return [c.byteLength, p, j.alg, k.algorithm.length];
		})()`, `[23,"secret text","A256GCM",256]`},
		{"ed25519 generate", `(async () => {
			const {publicKey, privateKey} = await S.generateKey("Ed25519", false, ["sign", "verify"]);
			const s = await S.sign("Ed25519", privateKey, utf8("m"));
			return [await S.verify({name: "Ed25519"}, publicKey, s, utf8("m")), (await S.exportKey("raw", publicKey)).byteLength, publicKey.extractable, privateKey.extractable];
		})()`, `[true,32,true,false]`},
		{"rsa generate", `(async () => {
			const {publicKey, privateKey} = await S.generateKey({name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256"}, false, ["sign", "verify"]);
			const s = await S.sign("RSASSA-PKCS1-v1_5", privateKey, utf8("m"));
			return [await S.verify("RSASSA-PKCS1-v1_5", publicKey, s, utf8("m")), s.byteLength, publicKey.algorithm.hash.name];
		})()`, `[true,256,"SHA-256"]`},
		{"deriveKey pbkdf2 to aes", `(async () => {
			const base = await S.importKey("raw", utf8("pw"), "PBKDF2", false, ["deriveKey"]);
			const k = await S.deriveKey({name: "PBKDF2", hash: "SHA-256", salt: utf8("s"), iterations: 1000}, base, {name: "AES-GCM", length: 128}, true, ["encrypt"]);
			const bitsKey = await S.importKey("raw", utf8("pw"), "PBKDF2", false, ["deriveBits"]);
			const bits = await S.deriveBits({name: "PBKDF2", hash: "SHA-256", salt: utf8("s"), iterations: 1000}, bitsKey, 128);
			return [k.algorithm.name, k.algorithm.length, hex(await S.exportKey("raw", k)) === hex(bits), k.usages];
		})()`, `["AES-GCM",128,true,["encrypt"]]`},
		{"deriveKey hkdf to hmac", `(async () => {
			const base = await S.importKey("raw", utf8("ikm"), {name: "HKDF"}, false, ["deriveKey"]);
			const k = await S.deriveKey({name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: new Uint8Array(0)}, base, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
			return [k.algorithm.length, k.algorithm.hash.name, k.extractable];
		})()`, `[512,"SHA-256",false]`},
		{"digest algorithms", `Promise.all(["SHA-1", {name: "sha-256"}, "SHA-384", "SHA-512"].map(async (a) => (await S.digest(a, utf8("abc"))).byteLength))`, `[20,32,48,64]`},
		{"DOMException shape", `(() => { const e = new DOMException("m", "DataError"); return [e.name, e.message, e instanceof Error, String(e)]; })()`, `["DataError","m",true,"DataError: m"]`},
		{"timingSafeEqual", `[S.timingSafeEqual(utf8("abc"), utf8("abc")), S.timingSafeEqual(utf8("abc"), utf8("abd")), S.timingSafeEqual(new Uint8Array(0), new ArrayBuffer(0)),
			(() => { try { S.timingSafeEqual(utf8("a"), utf8("ab")); return "no error"; } catch (e) { return e.name; } })()]`, `[true,false,true,"TypeError"]`},
		{"subtle is SubtleCrypto", `[crypto.subtle instanceof SubtleCrypto, typeof crypto.subtle.importKey]`, `[true,"function"]`},
	}
	runJSCases(t, harness(t), newMemHost(), cases)
}

// TestWebCryptoHostileClass: wrong key types, wrong usages, non-extractable
// export, truncated or tampered ciphertext and tags, unsupported
// algorithms, malformed key data and oversized inputs each reject with the
// WebCrypto error name, and the isolate stays usable.
func TestWebCryptoHostileClass(t *testing.T) {
	setup := `globalThis.hk = await S.importKey("raw", utf8("k"), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
		globalThis.ak = await S.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt", "decrypt"]);
		globalThis.ek = await S.generateKey({name: "ECDSA", namedCurve: "P-256"}, false, ["sign", "verify"]);
		globalThis.iv = new Uint8Array(12);
		globalThis.ct = await S.encrypt({name: "AES-GCM", iv}, ak, utf8("hello"));
		return "ok";`
	big := `new Uint8Array(` + strconv.Itoa(70<<10) + `)`
	cases := []jsCase{
		{"setup", `(async () => { ` + setup + ` })()`, `"ok"`},
		{"export non-extractable", `err(S.exportKey("raw", hk))`, `"InvalidAccessError"`},
		{"export private non-extractable", `err(S.exportKey("pkcs8", ek.privateKey))`, `"InvalidAccessError"`},
		{"verify without usage", `err(S.verify("HMAC", hk, new Uint8Array(32), utf8("x")))`, `"InvalidAccessError"`},
		{"sign with public key", `err(S.sign({name: "ECDSA", hash: "SHA-256"}, ek.publicKey, utf8("x")))`, `"InvalidAccessError"`},
		{"sign with wrong algorithm", `err(S.sign({name: "ECDSA", hash: "SHA-256"}, hk, utf8("x")))`, `"InvalidAccessError"`},
		{"encrypt with hmac key", `err(S.encrypt({name: "AES-GCM", iv}, hk, utf8("x")))`, `"InvalidAccessError"`},
		{"unknown algorithm", `err(S.sign("RSA-PSS", hk, utf8("x")))`, `"NotSupportedError"`},
		{"unsupported op for algorithm", `err(S.encrypt({name: "HMAC"}, hk, utf8("x")))`, `"NotSupportedError"`},
		{"unknown digest", `err(S.digest("MD5", utf8("x")))`, `"NotSupportedError"`},
		{"unknown curve", `err(S.generateKey({name: "ECDSA", namedCurve: "P-192"}, true, ["sign"]))`, `"NotSupportedError"`},
		{"usage not allowed", `err(S.importKey("raw", utf8("k"), {name: "HMAC", hash: "SHA-256"}, false, ["encrypt"]))`, `"SyntaxError"`},
		{"no usages on secret", `err(S.importKey("raw", utf8("k"), {name: "HMAC", hash: "SHA-256"}, false, []))`, `"SyntaxError"`},
		{"extractable hkdf", `err(S.importKey("raw", utf8("k"), "HKDF", true, ["deriveBits"]))`, `"SyntaxError"`},
		{"bad usage string", `err(S.importKey("raw", utf8("k"), {name: "HMAC", hash: "SHA-256"}, false, ["fly"]))`, `"TypeError (not a DOMException)"`},
		{"bad format", `err(S.importKey("pem", utf8("k"), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"TypeError (not a DOMException)"`},
		{"hmac without hash", `err(S.importKey("raw", utf8("k"), "HMAC", false, ["sign"]))`, `"TypeError (not a DOMException)"`},
		{"aes key wrong size", `err(S.importKey("raw", new Uint8Array(15), "AES-GCM", false, ["encrypt"]))`, `"DataError"`},
		{"empty hmac key", `err(S.importKey("raw", new Uint8Array(0), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"garbage spki", `err(S.importKey("spki", utf8("not der"), {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]))`, `"DataError"`},
		{"garbage pkcs8", `err(S.importKey("pkcs8", new Uint8Array(100), "Ed25519", true, ["sign"]))`, `"DataError"`},
		{"ec point off curve", `err(S.importKey("raw", unhex("04" + "11".repeat(64)), {name: "ECDSA", namedCurve: "P-256"}, true, ["verify"]))`, `"DataError"`},
		{"spki of wrong algorithm", `(async () => err(S.importKey("spki", await S.exportKey("spki", ek.publicKey), "Ed25519", true, ["verify"])))()`, `"DataError"`},
		{"spki of wrong curve", `(async () => err(S.importKey("spki", await S.exportKey("spki", ek.publicKey), {name: "ECDSA", namedCurve: "P-384"}, true, ["verify"])))()`, `"DataError"`},
		{"pkcs8 as spki", `(async () => { const k = await S.generateKey("Ed25519", true, ["sign"]); return err(S.importKey("spki", await S.exportKey("pkcs8", k.privateKey), "Ed25519", true, ["verify"])); })()`, `"DataError"`},
		{"jwk wrong kty", `err(S.importKey("jwk", {kty: "RSA", k: "a2V5"}, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"jwk alg mismatch", `err(S.importKey("jwk", {kty: "oct", k: "a2V5", alg: "HS512"}, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"jwk bad base64", `err(S.importKey("jwk", {kty: "oct", k: "***"}, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"jwk ext false imported extractable", `err(S.importKey("jwk", {kty: "oct", k: "a2V5", ext: false}, {name: "HMAC", hash: "SHA-256"}, true, ["sign"]))`, `"DataError"`},
		{"jwk key_ops without usage", `err(S.importKey("jwk", {kty: "oct", k: "a2V5", key_ops: ["verify"]}, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"jwk ec d mismatch", `(async () => { const a = await S.generateKey({name: "ECDSA", namedCurve: "P-256"}, true, ["sign"]); const b = await S.generateKey({name: "ECDSA", namedCurve: "P-256"}, true, ["sign"]);
			const ja = await S.exportKey("jwk", a.privateKey), jb = await S.exportKey("jwk", b.privateKey); ja.d = jb.d;
			return err(S.importKey("jwk", ja, {name: "ECDSA", namedCurve: "P-256"}, true, ["sign"])); })()`, `"DataError"`},
		{"jwk rsa without primes", `err(S.importKey("jwk", {kty: "RSA", n: "AQAB", e: "AQAB", d: "AQAB"}, {name: "RSASSA-PKCS1-v1_5", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"rsa modulus too small", `err(S.importKey("jwk", {kty: "RSA", n: b64u("c1".repeat(64)), e: "AQAB"}, {name: "RSASSA-PKCS1-v1_5", hash: "SHA-256"}, true, ["verify"]))`, `"DataError"`},
		{"huge key data", `err(S.importKey("raw", ` + big + `, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"huge pkcs8", `err(S.importKey("pkcs8", new Uint8Array(9000), {name: "RSASSA-PKCS1-v1_5", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"huge jwk", `err(S.importKey("jwk", {kty: "oct", k: "A".repeat(100000)}, {name: "HMAC", hash: "SHA-256"}, false, ["sign"]))`, `"DataError"`},
		{"truncated ciphertext", `err(S.decrypt({name: "AES-GCM", iv}, ak, ct.slice(0, 10)))`, `"OperationError"`},
		{"ciphertext shorter than tag", `err(S.decrypt({name: "AES-GCM", iv}, ak, ct.slice(0, 3)))`, `"OperationError"`},
		{"tampered tag", `(() => { const c = new Uint8Array(ct.slice(0)); c[c.length - 1] ^= 1; return err(S.decrypt({name: "AES-GCM", iv}, ak, c)); })()`, `"OperationError"`},
		{"wrong aad", `err(S.decrypt({name: "AES-GCM", iv, additionalData: utf8("x")}, ak, ct))`, `"OperationError"`},
		{"wrong iv", `err(S.decrypt({name: "AES-GCM", iv: new Uint8Array(12).fill(1)}, ak, ct))`, `"OperationError"`},
		{"empty iv", `err(S.encrypt({name: "AES-GCM", iv: new Uint8Array(0)}, ak, ct))`, `"OperationError"`},
		{"huge iv", `err(S.encrypt({name: "AES-GCM", iv: new Uint8Array(2000)}, ak, ct))`, `"OperationError"`},
		{"bad tag length", `err(S.encrypt({name: "AES-GCM", iv, tagLength: 100}, ak, ct))`, `"OperationError"`},
		{"missing iv", `err(S.encrypt({name: "AES-GCM"}, ak, ct))`, `"TypeError (not a DOMException)"`},
		{"pbkdf2 too many iterations", `(async () => { const k = await S.importKey("raw", utf8("p"), "PBKDF2", false, ["deriveBits"]); return err(S.deriveBits({name: "PBKDF2", hash: "SHA-256", salt: utf8("s"), iterations: 1e9}, k, 256)); })()`, `"OperationError"`},
		{"pbkdf2 huge output", `(async () => { const k = await S.importKey("raw", utf8("p"), "PBKDF2", false, ["deriveBits"]); return err(S.deriveBits({name: "PBKDF2", hash: "SHA-256", salt: utf8("s"), iterations: 1000}, k, 1 << 20)); })()`, `"OperationError"`},
		{"hkdf too long", `(async () => { const k = await S.importKey("raw", utf8("p"), "HKDF", false, ["deriveBits"]); return err(S.deriveBits({name: "HKDF", hash: "SHA-256", salt: utf8("s"), info: utf8("")}, k, 256 * 256 * 8)); })()`, `"OperationError"`},
		{"deriveBits null length", `(async () => { const k = await S.importKey("raw", utf8("p"), "HKDF", false, ["deriveBits"]); return err(S.deriveBits({name: "HKDF", hash: "SHA-256", salt: utf8("s"), info: utf8("")}, k, null)); })()`, `"OperationError"`},
		{"deriveBits with deriveKey-only key", `(async () => { const k = await S.importKey("raw", utf8("p"), "HKDF", false, ["deriveKey"]); return err(S.deriveBits({name: "HKDF", hash: "SHA-256", salt: utf8("s"), info: utf8("")}, k, 256)); })()`, `"InvalidAccessError"`},
		{"rsa generate bad exponent", `err(S.generateKey({name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([3]), hash: "SHA-256"}, false, ["sign"]))`, `"OperationError"`},
		{"rsa generate too large", `err(S.generateKey({name: "RSASSA-PKCS1-v1_5", modulusLength: 16384, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256"}, false, ["sign"]))`, `"OperationError"`},
		{"fake CryptoKey", `err(S.sign("HMAC", Object.create(CryptoKey.prototype), utf8("x")))`, `"TypeError (not a DOMException)"`},
		{"CryptoKey constructor", `err((async () => new CryptoKey())())`, `"TypeError (not a DOMException)"`},
		{"slots are frozen", `(() => { try { hk.usages.push("verify"); } catch (e) {} return hk.usages; })()`, `["sign"]`},
		{"ecdsa bad signature length is false", `S.verify({name: "ECDSA", hash: "SHA-256"}, ek.publicKey, new Uint8Array(3), utf8("x"))`, `false`},
		{"still usable", `S.encrypt({name: "AES-GCM", iv}, ak, utf8("hello")).then((c) => c.byteLength)`, `21`},
	}
	runJSCases(t, harness(t), newMemHost(), cases)
}

// TestWebCryptoKeySurvivesSnapshot: a CryptoKey's material is in the heap,
// so a key made before a snapshot signs the same after a restore.
func TestWebCryptoKeySurvivesSnapshot(t *testing.T) {
	rt := testRuntime(t)
	ctx := ctxTimeout(t, 20*time.Second)
	h := newMemHost()
	iso := harness(t)
	runJSCases(t, iso, h, []jsCase{
		{"make keys", `(async () => {
			globalThis.hk = await S.importKey("raw", utf8("Jefe"), {name: "HMAC", hash: "SHA-256"}, false, ["sign"]);
			globalThis.pair = await S.generateKey("Ed25519", false, ["sign", "verify"]);
			globalThis.sig = hex(await S.sign("Ed25519", pair.privateKey, utf8("m")));
			return "ok"; })()`, `"ok"`},
	})
	snap, err := iso.Snapshot(nil)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := rt.Restore(ctx, Spec{SessionID: "s1", Agent: "a1", Module: jsHarness}, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restored.Close(ctx) })
	runJSCases(t, restored, h, []jsCase{
		{"hmac after restore", `S.sign("HMAC", hk, utf8("what do ya want for nothing?")).then(hex)`, q("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")},
		{"ed25519 after restore", `S.sign("Ed25519", pair.privateKey, utf8("m")).then((s) => hex(s) === sig)`, `true`},
		{"still not extractable", `err(S.exportKey("raw", hk))`, `"InvalidAccessError"`},
	})
}

// TestWebCryptoSizeCapClass: data handed to crypto.subtle is a host call
// argument, refused by its length over Config.MaxBodyBytes (a RangeError)
// for every operation; under it, the operation runs.
func TestWebCryptoSizeCapClass(t *testing.T) {
	const limit = 64 << 10
	rt, err := NewRuntime(context.Background(), Config{MaxBodyBytes: limit,
		CacheDir: filepath.Join(os.TempDir(), "agentcloud-isolate-test-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	iso, err := rt.New(context.Background(), Spec{Module: jsHarness})
	if err != nil {
		t.Fatal(err)
	}
	defer iso.Close(context.Background())
	setup := `(async () => {
		globalThis.hk = await S.importKey("raw", utf8("k"), {name: "HMAC", hash: "SHA-256"}, false, ["sign", "verify"]);
		globalThis.ak = await S.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt", "decrypt"]);
		globalThis.dk = await S.importKey("raw", utf8("k"), "HKDF", false, ["deriveBits"]);
		globalThis.iv = new Uint8Array(12);
		return "ok"; })()`
	ops := map[string]string{
		"sign":    `S.sign("HMAC", hk, DATA)`,
		"verify":  `S.verify("HMAC", hk, new Uint8Array(32), DATA)`,
		"encrypt": `S.encrypt({name: "AES-GCM", iv}, ak, DATA)`,
		"decrypt": `S.decrypt({name: "AES-GCM", iv}, ak, DATA)`,
		"aad":     `S.encrypt({name: "AES-GCM", iv, additionalData: DATA}, ak, new Uint8Array(1))`,
		"digest":  `S.digest("SHA-256", DATA)`,
		"hkdf":    `S.deriveBits({name: "HKDF", hash: "SHA-256", salt: DATA, info: new Uint8Array(0)}, dk, 256)`,
		"import":  `S.importKey("raw", DATA, {name: "HMAC", hash: "SHA-256"}, false, ["sign"])`,
	}
	cases := []jsCase{{"setup", setup, `"ok"`}}
	for name, op := range ops {
		over := strings.ReplaceAll(op, "DATA", "new Uint8Array("+strconv.Itoa(limit+1)+")")
		cases = append(cases, jsCase{name + " over the cap", `err(` + over + `)`, `"RangeError (not a DOMException)"`})
	}
	under := strings.ReplaceAll(ops["sign"], "DATA", "new Uint8Array("+strconv.Itoa(limit-1024)+")")
	cases = append(cases, jsCase{"sign under the cap", under + `.then((s) => s.byteLength)`, `32`})
	runJSCases(t, iso, newMemHost(), cases)
}
