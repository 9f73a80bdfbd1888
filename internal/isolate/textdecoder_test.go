package isolate

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// textHelpers: cps lists a string's code points in hex; b builds bytes;
// err answers the name of what f threw; chunks decodes each byte of bs
// with {stream: true} and then flushes.
const textHelpers = `
globalThis.cps = (s) => Array.from(s, (c) => c.codePointAt(0).toString(16)).join(" ");
globalThis.b = (...x) => new Uint8Array(x);
globalThis.err = (f) => { try { return "no error: " + cps(f()); } catch (e) { return e.name; } };
globalThis.chunks = (d, bs) => { let s = ""; for (const x of bs) s += d.decode(new Uint8Array([x]), {stream: true}); return s + d.decode(); };
globalThis.u16 = (s, be) => { const out = []; for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); out.push(...(be ? [c >> 8, c & 255] : [c & 255, c >> 8])); } return new Uint8Array(out); };
`

// TestTextDecoderEncodingsClass: TextDecoder decodes UTF-8, UTF-16LE,
// UTF-16BE and windows-1252 under the Encoding standard's labels, with
// fatal, ignoreBOM and {stream: true} (a sequence split across calls, even
// one byte at a time, decodes whole); known vectors, the BOM, unpaired
// surrogates and odd byte counts; other labels are a RangeError.
func TestTextDecoderEncodingsClass(t *testing.T) {
	iso := harness(t)
	h := newMemHost()
	runJSCases(t, iso, h, []jsCase{{"helpers", `((0, eval)(` + q(textHelpers) + `), "ok")`, `"ok"`}})
	var w1252 []string
	for _, r := range cp1252 {
		w1252 = append(w1252, fmt.Sprintf("%x", r))
	}
	runJSCases(t, iso, h, []jsCase{
		{"labels", `["utf-8", "UTF8", " unicode-1-1-utf-8\n", "utf-16", "UTF-16LE", "ucs-2", "unicode", "utf-16be", "latin1", "ISO-8859-1", "ascii", "us-ascii", "windows-1252", "cp1252", "\tL1 "].map((l) => new TextDecoder(l).encoding)`,
			`["utf-8","utf-8","utf-8","utf-16le","utf-16le","utf-16le","utf-16le","utf-16be","windows-1252","windows-1252","windows-1252","windows-1252","windows-1252","windows-1252","windows-1252"]`},
		{"other labels", `["shift_jis", "utf-32", "iso-8859-2", "replacement", "utf-7", "", "utf-8\0", "\u00a0utf-8", "ut\u212a-8", "x".repeat(100)].map((l) => err(() => new TextDecoder(l)))`,
			`["RangeError","RangeError","RangeError","RangeError","RangeError","RangeError","RangeError","RangeError","RangeError","RangeError"]`},
		{"attributes", `(() => { const d = new TextDecoder("utf-16", {fatal: true, ignoreBOM: true}); return [d.encoding, d.fatal, d.ignoreBOM, new TextDecoder().fatal, new TextDecoder(undefined, null).encoding]; })()`, `["utf-16le",true,true,false,"utf-8"]`},
		{"windows-1252 0x80-0x9f", `cps(new TextDecoder("latin1").decode(new Uint8Array(32).map((_, i) => 0x80 + i)))`, q(strings.Join(w1252, " "))},
		{"windows-1252 high and ascii", `(() => { const s = new TextDecoder("ascii").decode(new Uint8Array(96).map((_, i) => 0xa0 + i)); return [s.length, s.charCodeAt(0), s.charCodeAt(95), new TextDecoder("us-ascii").decode(b(104, 105, 0, 127))]; })()`, `[96,160,255,"hi\u0000` + "\u007f" + `"]`},
		{"windows-1252 never fails", `cps(new TextDecoder("windows-1252", {fatal: true}).decode(b(0x81, 0x8d, 0x8f, 0x90, 0x9d, 0xff)))`, `"81 8d 8f 90 9d ff"`},
		{"windows-1252 keeps a BOM", `cps(new TextDecoder("windows-1252").decode(b(0xef, 0xbb, 0xbf)))`, `"ef bb bf"`},
		{"utf-16le", `cps(new TextDecoder("utf-16le").decode(b(0x68, 0, 0xe9, 0, 0x3d, 0xd8, 0, 0xde, 0xac, 0x20)))`, `"68 e9 1f600 20ac"`},
		{"utf-16be", `cps(new TextDecoder("utf-16be").decode(b(0, 0x68, 0, 0xe9, 0xd8, 0x3d, 0xde, 0, 0x20, 0xac)))`, `"68 e9 1f600 20ac"`},
		{"utf-16 views", `(() => { const u = new Uint8Array([0, 0x41, 0, 0x42, 0]); return [new TextDecoder("utf-16le").decode(u.subarray(1, 5)), new TextDecoder("utf-16le").decode(new Uint16Array([0x43, 0x44]))]; })()`, `["AB","CD"]`},
		{"bom dropped", `[new TextDecoder("utf-16le").decode(b(0xff, 0xfe, 0x41, 0)), new TextDecoder("utf-16be").decode(b(0xfe, 0xff, 0, 0x41)), new TextDecoder().decode(b(0xef, 0xbb, 0xbf, 0x41))]`, `["A","A","A"]`},
		{"bom kept", `[cps(new TextDecoder("utf-16le", {ignoreBOM: true}).decode(b(0xff, 0xfe, 0x41, 0))), cps(new TextDecoder("utf-8", {ignoreBOM: true}).decode(b(0xef, 0xbb, 0xbf))), cps(new TextDecoder("utf-16le").decode(b(0xfe, 0xff))), cps(new TextDecoder().decode(b(0x41, 0xef, 0xbb, 0xbf)))]`,
			`["feff 41","feff","fffe","41 feff"]`},
		{"only one bom", `cps(new TextDecoder("utf-16le").decode(b(0xff, 0xfe, 0xff, 0xfe)))`, `"feff"`},
		{"unpaired surrogates", `[b(0, 0xd8, 0x41, 0), b(0, 0xdc, 0x41, 0), b(0x41, 0, 0, 0xd8), b(0, 0xd8, 0, 0xd8, 0, 0xdc), b(0, 0xdc, 0, 0xd8)].map((x) => cps(new TextDecoder("utf-16le").decode(x)))`,
			`["fffd 41","fffd 41","41 fffd","fffd 10000","fffd fffd"]`},
		{"odd byte counts", `[b(0x41), b(0x41, 0, 0x42), b(0, 0xd8, 0x41), b()].map((x) => cps(new TextDecoder("utf-16le").decode(x)))`, `["fffd","41 fffd","fffd",""]`},
		{"utf-8 maximal subparts", `[b(0xe2, 0x82, 0x41), b(0xff, 0xff), b(0xf0, 0x9f, 0x98), b(0xed, 0xa0, 0x80), b(0xc0, 0x80), b(0xe0, 0x80, 0x41), b(0xf4, 0x90, 0x80, 0x80), b(0x41, 0xc3)].map((x) => cps(new TextDecoder().decode(x)))`,
			`["fffd 41","fffd fffd","fffd","fffd fffd fffd","fffd fffd","fffd fffd 41","fffd fffd fffd fffd","41 fffd"]`},
		{"body text uses the same decoder", `new Response(b(0xe2, 0x82, 0x41, 0xff, 0xff)).text().then(cps)`, `"fffd 41 fffd fffd"`},
		{"fatal", `[err(() => new TextDecoder("utf-8", {fatal: true}).decode(b(0xe2, 0x82))), err(() => new TextDecoder("utf-16le", {fatal: true}).decode(b(0, 0xd8))),
			err(() => new TextDecoder("utf-16le", {fatal: true}).decode(b(0x41))), err(() => new TextDecoder("utf-16be", {fatal: true}).decode(b(0xdc, 0))), err(() => new TextDecoder("utf-16be", {fatal: true}).decode(b(0, 0x41)))]`,
			`["TypeError","TypeError","TypeError","TypeError","no error: 41"]`},
		{"stream utf-8", `(() => { const d = new TextDecoder(); return [cps(d.decode(b(0xf0, 0x9f), {stream: true})), cps(d.decode(b(0x98, 0x80, 0xc3), {stream: true})), cps(d.decode(b(0xa9)))]; })()`, `["","1f600","e9"]`},
		{"stream utf-16", `(() => { const d = new TextDecoder("utf-16le"); return [d.decode(b(0x41), {stream: true}), cps(d.decode(b(0, 0x3d, 0xd8), {stream: true})), cps(d.decode(b(0, 0xde), {stream: true})), cps(d.decode())]; })()`, `["","41","1f600",""]`},
		{"stream ends mid-sequence", `(() => { const d = new TextDecoder(), e = new TextDecoder("utf-16be"); return [cps(d.decode(b(0xf0, 0x9f), {stream: true}) + d.decode()), cps(e.decode(b(0xd8, 0x3d, 0xde), {stream: true}) + e.decode()), cps(d.decode(b(0x41)))]; })()`, `["fffd","fffd","41"]`},
		{"stream fatal at the end", `(() => { const d = new TextDecoder("utf-8", {fatal: true}); d.decode(b(0xf0, 0x9f), {stream: true}); return [err(() => d.decode()), d.decode(b(0x41))]; })()`, `["TypeError","A"]`},
		{"one byte at a time", `(() => { const s = "\ufeffaé€😀\u0000z"; const u8 = new TextEncoder().encode(s);
			return [chunks(new TextDecoder(), u8) === s.slice(1), chunks(new TextDecoder("utf-16le"), u16(s)) === s.slice(1), chunks(new TextDecoder("utf-16be"), u16(s, true)) === s.slice(1),
				chunks(new TextDecoder("utf-8", {ignoreBOM: true}), u8) === s, chunks(new TextDecoder("latin1"), new Uint8Array(256).map((_, i) => i)) === new TextDecoder("latin1").decode(new Uint8Array(256).map((_, i) => i))]; })()`,
			`[true,true,true,true,true]`},
		{"bom once per stream", `(() => { const d = new TextDecoder(); const a = d.decode(b(0xef, 0xbb), {stream: true}) + d.decode(b(0xbf, 0x41, 0xef, 0xbb, 0xbf, 0x42)); return [cps(a), cps(d.decode(b(0xef, 0xbb, 0xbf, 0x43)))]; })()`, `["41 feff 42","43"]`},
		{"huge inputs", `(() => { const n = 4 << 20; const a = new Uint8Array(n).fill(0x80), u = new Uint8Array(n).fill(0x41);
			const w = new TextDecoder("windows-1252").decode(a), l = new TextDecoder("utf-16le").decode(u), x = new TextDecoder().decode(a);
			return [w.length, w.charCodeAt(n - 1), l.length, l.charCodeAt(0), x.length, x.charCodeAt(7)]; })()`, `[4194304,8364,2097152,16705,4194304,65533]`},
		{"huge streamed", `(() => { const d = new TextDecoder(); const u = new TextEncoder().encode("é".repeat(1 << 20)); let n = 0; for (let i = 0; i < u.length; i += 65535) n += d.decode(u.subarray(i, i + 65535), {stream: true}).length; return n + d.decode().length; })()`, `1048576`},
	})
}

// TestTextDecoderStreamEncodingsClass: TextDecoderStream decodes every
// TextDecoder encoding with characters split across chunks (one byte per
// chunk, or a surrogate pair across two), drops a BOM only at the start,
// and a fatal stream that ends inside a sequence errors.
func TestTextDecoderStreamEncodingsClass(t *testing.T) {
	iso := harness(t)
	h := newMemHost()
	runJSCases(t, iso, h, []jsCase{{"helpers", `((0, eval)(` + q(textHelpers) + `), "ok")`, `"ok"`}})
	runJSCases(t, iso, h, []jsCase{{"stream helper", `((0, eval)("globalThis.pipe = async (label, parts, opts) => { const r = new ReadableStream({ start(c) { for (const p of parts) c.enqueue(p); c.close(); } }); let s = ''; for await (const x of r.pipeThrough(new TextDecoderStream(label, opts))) s += x; return s; }"), "ok")`, `"ok"`}})
	runJSCases(t, iso, h, []jsCase{
		{"utf-8 one byte per chunk", `(async () => { const s = "aé€😀z"; const u = new TextEncoder().encode("\ufeff" + s); return (await pipe("utf-8", Array.from(u, (x) => new Uint8Array([x])))) === s; })()`, `true`},
		{"utf-8 split across chunks", `pipe("utf-8", [b(0x41, 0xf0), b(0x9f, 0x98), b(0x80, 0xe2, 0x82), b(0xac)]).then(cps)`, `"41 1f600 20ac"`},
		{"utf-16le one byte per chunk", `(async () => { const s = "aé€😀z"; return (await pipe("utf-16", Array.from(u16("\ufeff" + s), (x) => new Uint8Array([x])))) === s; })()`, `true`},
		{"utf-16be pair across chunks", `pipe("utf-16be", [b(0, 0x41, 0xd8, 0x3d), b(0xde, 0), b(0xfe, 0xff)]).then(cps)`, `"41 1f600 feff"`},
		{"windows-1252", `pipe("latin1", [b(0x80, 0xe9), b(0x41)]).then(cps)`, `"20ac e9 41"`},
		{"encoding attribute", `[new TextDecoderStream("utf-16").encoding, new TextDecoderStream("ascii").encoding, new TextDecoderStream().encoding]`, `["utf-16le","windows-1252","utf-8"]`},
		{"ends inside a sequence", `pipe("utf-8", [b(0x41, 0xf0, 0x9f)]).then(cps)`, `"41 fffd"`},
		{"fatal ends inside a sequence", `pipe("utf-16le", [b(0x41, 0, 0x42)], {fatal: true}).then(() => "ok", (e) => e.name)`, `"TypeError"`},
	})
}

// BenchmarkTextDecoderUTF8: 100 times new TextDecoder().decode of a 2 KiB
// JSON body with some non-ASCII text, the common case the fast path keeps.
func BenchmarkTextDecoderUTF8(b *testing.B) {
	benchJS(b, `(globalThis.u = new TextEncoder().encode(JSON.stringify(Array.from({length: 40}, (_, i) => ({id: i, name: "Zoë ünïcode", ok: true})))), 1)`,
		`(() => { for (let i = 0; i < 100; i++) new TextDecoder().decode(u); return 1; })()`)
}

// BenchmarkTextDecoderUTF8Stream is BenchmarkTextDecoderUTF8 in two
// streamed parts cut inside a character.
func BenchmarkTextDecoderUTF8Stream(b *testing.B) {
	benchJS(b, `(globalThis.u = new TextEncoder().encode(JSON.stringify(Array.from({length: 40}, (_, i) => ({id: i, name: "Zoë ünïcode", ok: true})))), globalThis.cut = u.indexOf(0xc3) + 1, 1)`,
		`(() => { for (let i = 0; i < 100; i++) { const d = new TextDecoder(); d.decode(u.subarray(0, cut), {stream: true}); d.decode(u.subarray(cut)); } return 1; })()`)
}

// FuzzDecodeText: for every encoding, decoding bytes in two streamed parts
// (the first part's unfinished tail passed again) gives the text of one
// decode, that text is valid UTF-8, and a fatal decode that succeeds gives
// the same text.
func FuzzDecodeText(f *testing.F) {
	for _, seed := range []string{"", "a\xc3\xa9", "\xf0\x9f\x98\x80", "\xe2\x82A\xff", "\x3d\xd8\x00\xde", "\x00\xd8A", "\xef\xbb\xbf\x80\x9f"} {
		f.Add([]byte(seed), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		at := int(cut) % (len(b) + 1)
		for _, enc := range []string{"utf-8", "utf-16le", "utf-16be", "windows-1252"} {
			whole, rest, err := decodeText(enc, b, false, false)
			if err != nil || rest != 0 {
				t.Fatalf("%s %x: rest %d, %v", enc, b, rest, err)
			}
			if !utf8.ValidString(whole) {
				t.Fatalf("%s %x: invalid UTF-8 %q", enc, b, whole)
			}
			first, rest, err := decodeText(enc, b[:at], false, true)
			if err != nil || rest > at || rest > 3 {
				t.Fatalf("%s %x[:%d] streamed: rest %d, %v", enc, b, at, rest, err)
			}
			second, _, _ := decodeText(enc, b[at-rest:], false, false)
			if first+second != whole {
				t.Fatalf("%s %x cut at %d: %q + %q, want %q", enc, b, at, first, second, whole)
			}
			if s, _, err := decodeText(enc, b, true, false); err == nil && s != whole {
				t.Fatalf("%s %x: fatal %q, want %q", enc, b, s, whole)
			}
		}
	})
}
