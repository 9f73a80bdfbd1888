package isolate

import "testing"

// identityHelpers, an expression: pipe(ts, chunks) writes chunks into ts
// and reads it to the end, answering the bytes read as an array or the
// error's name and message.
const identityHelpers = `
globalThis.pipe = async (ts, chunks) => {
	const w = ts.writable.getWriter(), r = ts.readable.getReader(), out = [];
	const reading = (async () => { for (;;) { const { done, value } = await r.read(); if (done) return; out.push(value.constructor.name, ...value); } })();
	try {
		for (const c of chunks) await w.write(c);
		await w.close();
		await reading;
		return out;
	} catch (e) { reading.catch(() => {}); return e.name + ": " + e.message; }
}`

// TestIdentityTransformStreamClass: IdentityTransformStream passes bytes
// through as Uint8Arrays and refuses other chunks with a TypeError;
// FixedLengthStream does the same and errors when more or fewer bytes than
// its length pass; both are TransformStreams, a Response body can be made
// of their readable side, and bogus lengths are TypeErrors.
func TestIdentityTransformStreamClass(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"identity", `pipe(new IdentityTransformStream(), [new Uint8Array([1, 2]), new Uint16Array([0x0403]).buffer, new DataView(new Uint8Array([9, 5, 6]).buffer, 1)])`,
			`["Uint8Array",1,2,"Uint8Array",3,4,"Uint8Array",5,6]`},
		{"identity class", `(() => { const t = new IdentityTransformStream(); return [t instanceof TransformStream, t.readable instanceof ReadableStream, String(t)] })()`,
			`[true,true,"[object IdentityTransformStream]"]`},
		{"identity string chunk", `pipe(new IdentityTransformStream(), ["text"])`,
			`TypeError: This TransformStream is being used as a byte stream, but received an object of non-ArrayBuffer/ArrayBufferView type on its writable side.`},
		{"identity object chunk", `pipe(new IdentityTransformStream(), [{byteLength: 1}]).then((s) => s.slice(0, 10))`, `TypeError:`},
		{"response body", `(async () => { const { readable, writable } = new IdentityTransformStream(); const w = writable.getWriter(); w.write(new TextEncoder().encode("streamed")); w.close(); return new Response(readable).text() })()`,
			`streamed`},
		{"fixed exact", `pipe(new FixedLengthStream(3), [new Uint8Array([1]), new Uint8Array([2, 3])])`, `["Uint8Array",1,"Uint8Array",2,3]`},
		{"fixed bigint zero", `pipe(new FixedLengthStream(0n), [])`, `[]`},
		{"fixed too many", `pipe(new FixedLengthStream(2), [new Uint8Array([1, 2, 3])])`, `TypeError: Attempt to write too many bytes through a FixedLengthStream.`},
		{"fixed too few", `pipe(new FixedLengthStream(4), [new Uint8Array([1])])`, `TypeError: FixedLengthStream did not see all expected bytes before close().`},
		{"fixed class", `(() => { const f = new FixedLengthStream(1); return [f instanceof IdentityTransformStream, f instanceof TransformStream, String(f)] })()`,
			`[true,true,"[object FixedLengthStream]"]`},
		{"fixed bogus lengths", `[[], [-1], [1.5], ["3"], [NaN], [Infinity], [null], [2 ** 60]].map((a) => { try { new FixedLengthStream(...a); return "no error"; } catch (e) { return e.name; } })`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError"]`},
		{"identity ignores a transformer", `pipe(new IdentityTransformStream({ transform(c, ctl) { ctl.enqueue(new Uint8Array([7])); } }), [new Uint8Array([1])])`, `["Uint8Array",1]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := evalJS(t, identityHelpers+", "+c.expr); got != c.want {
				t.Fatalf("%s\n got %s\nwant %s", c.expr, got, c.want)
			}
		})
	}
}
