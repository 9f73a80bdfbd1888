package isolate

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cloneHelpers: dce runs f and answers the name of what it threw.
const cloneHelpers = `
globalThis.dce = (f) => { try { f(); return "no error"; } catch (e) { return e.name + (e instanceof DOMException ? "" : " (not a DOMException)"); } };
`

// TestStructuredCloneClass: structuredClone keeps every type the structured
// clone algorithm keeps (Map, Set, Date, RegExp, ArrayBuffer, views sharing
// a buffer, Error types, BigInt, boxed primitives, undefined, -0, NaN,
// sparse arrays, cycles and shared references) and refuses what it cannot
// clone with a DataCloneError.
func TestStructuredCloneClass(t *testing.T) {
	iso := harness(t)
	h := newMemHost()
	runJSCases(t, iso, h, []jsCase{{"helpers", `((0, eval)(` + q(cloneHelpers) + `), "ok")`, `"ok"`}})
	runJSCases(t, iso, h, []jsCase{
		{"json values", `JSON.stringify(structuredClone({a: [1, {b: 2}], s: "x", n: null, t: true}))`, q(`{"a":[1,{"b":2}],"s":"x","n":null,"t":true}`)},
		{"map", `(() => { const m = structuredClone(new Map([[1, "a"], [{k: 1}, new Set([2])]])); const [[k1, v1], [k2, v2]] = m; return [m instanceof Map, k1, v1, k2.k, v2 instanceof Set, [...v2]]; })()`, `[true,1,"a",1,true,[2]]`},
		{"date and regexp", `(() => { const c = structuredClone({d: new Date(86400000), r: /a+b/gi, bad: new Date(NaN)}); return [c.d instanceof Date, c.d.getTime(), c.r instanceof RegExp, c.r.source, c.r.flags, isNaN(c.bad.getTime())]; })()`, `[true,86400000,true,"a+b","gi",true]`},
		{"primitives", `(() => { const c = structuredClone([undefined, -0, NaN, Infinity, 10n ** 30n, "s"]); return [c[0] === undefined, 1 / c[1], isNaN(c[2]), c[3], String(c[4]), typeof c[4], c.length]; })()`, `[true,null,true,null,"1000000000000000000000000000000","bigint",6]`},
		{"sparse array and extra props", `(() => { const a = [1, , 3]; a.x = "y"; const c = structuredClone(a); return [c.length, 1 in c, c[2], c.x, Array.isArray(c)]; })()`, `[3,false,3,"y",true]`},
		{"array buffer copied", `(() => { const b = new Uint8Array([1, 2, 3]).buffer; const c = structuredClone(b); new Uint8Array(b)[0] = 9; return [c instanceof ArrayBuffer, Array.from(new Uint8Array(c))]; })()`, `[true,[1,2,3]]`},
		{"views share a buffer", `(() => { const buf = new ArrayBuffer(8); const v = {a: new Uint8Array(buf, 2, 4), b: new Float64Array(buf), d: new DataView(buf, 1, 3), big: new BigInt64Array([5n])};
			const c = structuredClone(v); c.a[0] = 7; return [c.a.buffer === c.b.buffer, c.a.buffer === c.d.buffer, new Uint8Array(c.b.buffer)[2], c.a.byteOffset, c.a.length, c.d.byteOffset, c.d.byteLength, c.d instanceof DataView, String(c.big[0]), new Uint8Array(buf)[2]]; })()`,
			`[true,true,7,2,4,1,3,true,"5",0]`},
		{"errors", `(() => { const e = new RangeError("out", {cause: 1}); const c = structuredClone([e, new TypeError("t"), new DOMException("x", "DataError"), Object.assign(new Error("m"), {name: "Custom"})]);
			return [c[0] instanceof RangeError, c[0].message, c[0].cause, c[1] instanceof TypeError, c[2].name, c[2].message, c[2] instanceof DOMException, c[3].name, c[0] !== e]; })()`,
			`[true,"out",1,true,"DataError","x",true,"Error",true]`},
		{"boxed", `(() => { const c = structuredClone([new Number(3), new String("s"), new Boolean(false), Object(7n)]); return [typeof c[0], c[0] + 0, c[1] + "", c[2].valueOf(), typeof c[3], String(c[3].valueOf())]; })()`, `["object",3,"s",false,"object","7"]`},
		{"cycles and shared references", `(() => { const o = {n: 1}; o.self = o; const shared = {s: 1}; o.a = [shared, shared]; const m = new Map(); m.set(m, o); o.m = m;
			const c = structuredClone(o); return [c.self === c, c.a[0] === c.a[1], c.a[0] !== shared, c.m.get(c.m) === c, c !== o]; })()`, `[true,true,true,true,true]`},
		{"class instance becomes plain", `(() => { class P { constructor() { this.x = 1; } get y() { return 2; } } const c = structuredClone(new P()); return [Object.getPrototypeOf(c) === Object.prototype, c.x, c.y]; })()`, `[true,1,null]`},
		{"__proto__ key stays a key", `(() => { const o = JSON.parse('{"__proto__": {"polluted": 1}, "a": 1}'); const c = structuredClone(o); return [Object.getPrototypeOf(c) === Object.prototype, c.polluted, Object.keys(c)]; })()`, `[true,null,["__proto__","a"]]`},
		{"non-enumerable and symbol keys dropped", `(() => { const o = {a: 1, [Symbol("s")]: 2}; Object.defineProperty(o, "h", {value: 3}); return Object.getOwnPropertyNames(structuredClone(o)).concat(Object.getOwnPropertySymbols(structuredClone(o)).length); })()`, `["a",0]`},
		{"crypto key", `crypto.subtle.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt"]).then((k) => { const c = structuredClone(k); return [c instanceof CryptoKey, c !== k, c.algorithm.name, c.usages]; })`, `[true,true,"AES-GCM",["encrypt"]]`},
		{"function refused", `dce(() => structuredClone({f() {}}))`, `"DataCloneError"`},
		{"symbol refused", `dce(() => structuredClone(Symbol("x")))`, `"DataCloneError"`},
		{"nested function refused", `dce(() => structuredClone(new Map([[1, [() => 1]]])))`, `"DataCloneError"`},
		{"weakmap refused", `dce(() => structuredClone(new WeakMap()))`, `"DataCloneError"`},
		{"promise refused", `dce(() => structuredClone(Promise.resolve(1)))`, `"DataCloneError"`},
		{"host objects refused", `[dce(() => structuredClone(new Headers())), dce(() => structuredClone(new Request("http://x/"))), dce(() => structuredClone(new URL("http://x/"))), dce(() => structuredClone(new Response("x")))]`,
			`["DataCloneError","DataCloneError","DataCloneError","DataCloneError"]`},
		{"transfer refused", `dce(() => { const b = new ArrayBuffer(1); structuredClone(b, {transfer: [b]}); })`, `"DataCloneError"`},
		{"undefined", `structuredClone(undefined) === undefined && structuredClone() === undefined`, `true`},
		{"deep nesting", `(() => { let o = {}; const top = o; for (let i = 0; i < 200; i++) { o.n = [{}]; o = o.n[0]; } let c = structuredClone(top), d = 0; while (c.n) { c = c.n[0]; d++; } return d; })()`, `200`},
		{"very deep nesting", `(() => { let o = {}; const top = o; for (let i = 0; i < 20000; i++) { o.n = {}; o = o.n; } let c = structuredClone(top), d = 0; while (c.n) { c = c.n; d++; } return d; })()`, `20000`},
		{"still usable", `structuredClone(new Set([1])).size`, `1`},
		// Each property is read once, as structured clone reads it, and no
		// toJSON runs (the JSON fast path gives up before it would).
		{"getter read once", `(() => { let n = 0; const o = {a: 1, get g() { n++; return 2; }}; const c = structuredClone({o}); return [n, c.o.g, c.o.a]; })()`, `[1,2,1]`},
		{"throwing getter thrown once", `(() => { let n = 0; try { structuredClone({x: {get g() { n++; throw new Error("boom"); }}}); } catch (e) { return [n, e.message]; } return [n, "no throw"]; })()`, `[1,"boom"]`},
		{"toJSON never called", `(() => { let n = 0; class J { constructor() { this.k = 1; } toJSON() { n++; return "j"; } } const c = structuredClone([{v: new J()}, new J(), {d: new Date(0)}]); return [n, c[0].v.k, c[1].k, c[2].d instanceof Date]; })()`, `[0,1,1,true]`},
		{"file fields are its slots", `(() => { class F extends File { get name() { return {evil: 1}; } get type() { return 7; } } const c = structuredClone(new F(["x"], "real.txt", {type: "text/plain", lastModified: 5})); return [c instanceof File, c.name, c.type, c.lastModified]; })()`, `[true,"real.txt","text/plain",5]`},
	})
}

// stateEvalModule evaluates each request's body as an async expression
// with env.state as st and dce(p) naming the error p rejects with (the
// harness module ignores env).
const stateEvalModule = `
globalThis.dce = async (p) => { try { await p; return "no error"; } catch (e) { return e.name; } };
export default { async fetch(req, env) {
	const src = await req.text();
	globalThis.st = env.state;
	try {
		const v = await (0, eval)("(async () => (" + src + "))()");
		return new Response(JSON.stringify(v === undefined ? null : v));
	} catch (e) { return new Response("throw " + e.name + ": " + e.message); }
} }`

// TestStateStructuredCloneClass: env.state stores structured-clone values
// losslessly; plain JSON values are stored byte-identical to
// JSON.stringify (what the HTTP state routes and older data read), values
// JSON cannot represent in a tagged envelope, and what cannot be cloned is
// refused with a DataCloneError before anything is written.
func TestStateStructuredCloneClass(t *testing.T) {
	h := newMemHost()
	h.state["ext:bad"] = []byte(`{"__ac_sc":7,"v":1}`)
	h.state["ext:plain"] = []byte(`{"a":[1,2],"b":"x"}`)
	mod := newIsolate(t, stateEvalModule)
	runJSCases(t, mod, h, []jsCase{
		{"plain json put", `(async () => { await st.put("p:obj", {a: [1, 2.5, "x", null, true], b: {c: "é"}}); await st.put("p:num", 42); await st.put("p:str", "s"); await st.put({"p:m1": [1], "p:m2": null}); return "ok"; })()`, `"ok"`},
		{"rich put", `(async () => {
			const shared = {s: 1};
			await st.put("r:map", new Map([["k", new Set([1, 2])], [1, new Date(5)]]));
			await st.put("r:bytes", {u8: new Uint8Array([0, 255, 7]), ab: new Uint16Array([65535]).buffer});
			await st.put("r:misc", {u: undefined, z: -0, nan: NaN, big: 2n ** 70n, re: /x/y, e: new TypeError("bad"), shared: [shared, shared]});
			const cyc = {name: "c"}; cyc.me = cyc; await st.put("r:cycle", cyc);
			await st.put("r:undefined", undefined);
			await st.put("r:envelope-lookalike", {__ac_sc: 1, v: 2});
			return "ok"; })()`, `"ok"`},
		{"rich get", `(async () => {
			const m = await st.get("r:map"), b = await st.get("r:bytes"), x = await st.get("r:misc"), c = await st.get("r:cycle");
			return [m instanceof Map, [...m.get("k")], m.get(1).getTime(), b.u8 instanceof Uint8Array, Array.from(b.u8), new Uint16Array(b.ab)[0],
				"u" in x && x.u === undefined, 1 / x.z, isNaN(x.nan), String(x.big), x.re.flags, x.e instanceof TypeError, x.e.message, x.shared[0] === x.shared[1],
				c.me === c, await st.get("r:undefined"), (await st.get("r:envelope-lookalike")).v];
		})()`, `[true,[1,2],5,true,[0,255,7],65535,true,null,true,"1180591620717411303424","y",true,"bad",true,true,null,2]`},
		{"list decodes", `(async () => { const l = await st.list({prefix: "r:"}); return [l.get("r:map") instanceof Map, l.get("r:cycle").me === l.get("r:cycle"), l.size]; })()`, `[true,true,6]`},
		{"get many decodes", `(async () => { const m = await st.get(["r:map", "p:num"]); return [m.get("r:map") instanceof Map, m.get("p:num")]; })()`, `[true,42]`},
		{"plain data written elsewhere", `st.get("ext:plain")`, `{"a":[1,2],"b":"x"}`},
		{"unknown envelope version", `dce(st.get("ext:bad"))`, `"DataCloneError"`},
		{"function refused", `dce(st.put("bad:f", () => 1))`, `"DataCloneError"`},
		{"nested function refused", `dce(st.put("bad:nested", new Map([[1, {f() {}}]])))`, `"DataCloneError"`},
		{"symbol refused", `dce(st.put("bad:sym", {s: Symbol("x")}))`, `"DataCloneError"`},
		{"crypto key refused", `crypto.subtle.generateKey({name: "AES-GCM", length: 128}, true, ["encrypt"]).then((k) => dce(st.put("bad:key", k)))`, `"DataCloneError"`},
		{"host object refused", `dce(st.put("bad:req", new Request("http://x/")))`, `"DataCloneError"`},
		{"multi put refused whole", `(async () => [await dce(st.put({"bad:ok": 1, "bad:fn": () => 1})), await st.get("bad:ok")])()`, `["DataCloneError",null]`},
	})
	plain := map[string]string{
		"p:obj": `{"a":[1,2.5,"x",null,true],"b":{"c":"é"}}`,
		"p:num": `42`,
		"p:str": `"s"`,
		"p:m1":  `[1]`,
		"p:m2":  `null`,
	}
	for k, want := range plain {
		if got := string(h.state[k]); got != want {
			t.Errorf("%s stored as %s, want the JSON text %s", k, got, want)
		}
	}
	for _, k := range []string{"r:map", "r:bytes", "r:misc", "r:cycle", "r:undefined", "r:envelope-lookalike"} {
		if got := string(h.state[k]); len(got) < 12 || got[:11] != `{"__ac_sc":` {
			t.Errorf("%s stored as %s, want an envelope", k, got)
		}
	}
	for k := range h.state {
		if len(k) > 4 && k[:4] == "bad:" {
			t.Errorf("refused value was stored under %s: %s", k, h.state[k])
		}
	}
}

// envelopeModule answers what env.state.get of the key in the query gives:
// "ok <type>" or the name of the error it threw.
const envelopeModule = `export default { async fetch(req, env) {
	const key = new URL(req.url).searchParams.get("k");
	try { const v = await env.state.get(key); return new Response("ok " + Object.prototype.toString.call(v)); }
	catch (e) { return new Response(e.name); }
} }`

// hostileEnvelopes are stored values (as the state routes or a corrupt
// store could write them) that look like envelopes but are not valid ones.
var hostileEnvelopes = []string{
	`{"__ac_sc":1}`,
	`{"__ac_sc":1,"v":["r",5],"o":[]}`,
	`{"__ac_sc":1,"v":["r",-1],"o":[]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["V","Uint8Array",["r",0],0,1]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["D",["r",0]]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["P","Number",["r",0]]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["V","Uint8Array",["r",1],0,1000000000],["B","AAAA"]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["V","Nope",["r",1],0,1],["B","AAAA"]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["V","Uint8Array",["r",1],0,1],["O",[]]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["B","!!!"]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["B",7]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["R","(",""]]}`,
	`{"__ac_sc":1,"v":["b","x1"],"o":[]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["A",-1,[]]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["A",1e300,[]]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["O","notalist"]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["M",[["r",0],["r",0],1]]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["K",{}]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[["Z"]]}`,
	`{"__ac_sc":1,"v":["r",0],"o":[null]}`,
	`{"__ac_sc":1,"v":{"x":1},"o":[]}`,
	`{"__ac_sc":1,"v":["q"],"o":[]}`,
	`{"__ac_sc":"1","v":1}`,
	`{"__ac_sc":2,"v":1}`,
}

// TestStateEnvelopeHostileClass: a malformed envelope in state reads as a
// thrown error (DataCloneError, or the RangeError/SyntaxError a constructor
// throws), never a crash, and the isolate stays usable.
func TestStateEnvelopeHostileClass(t *testing.T) {
	iso := newIsolate(t, envelopeModule)
	h := newMemHost()
	h.state["good"] = []byte(`{"__ac_sc":1,"v":["r",0],"o":[["M",[1,2]]]}`)
	for i, v := range hostileEnvelopes {
		k := "bad" + strconv.Itoa(i)
		h.state[k] = []byte(v)
		got := get(t, iso, h, "http://x/?k="+k)
		if !strings.HasSuffix(got, "Error") {
			t.Errorf("%s read as %q, want a thrown error", v, got)
		}
	}
	if got := get(t, iso, h, "http://x/?k=good"); got != "ok [object Map]" {
		t.Fatalf("after hostile envelopes: %q", got)
	}
}

// FuzzStateEnvelope stores arbitrary JSON under a key and reads it back
// through env.state.get: the read answers a value or a thrown error, never
// a fatal isolate error.
func FuzzStateEnvelope(f *testing.F) {
	for _, v := range hostileEnvelopes {
		f.Add(v)
	}
	f.Add(`{"__ac_sc":1,"v":["r",0],"o":[["O",["a",["r",1]]],["S",[1,["u"],["n","NaN"]]]]}`)
	f.Add(`{"a":[1,{"b":null}]}`)
	iso := newIsolate(f, envelopeModule)
	f.Fuzz(func(t *testing.T, v string) {
		if !json.Valid([]byte(v)) {
			return
		}
		h := newMemHost()
		h.state["k"] = []byte(v)
		resp, err := iso.Fetch(ctxTimeout(t, 10*time.Second), Request{Method: "GET", URL: "http://x/?k=k"}, h)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if resp.Status != 200 {
			t.Fatalf("%s: status %d %s", v, resp.Status, resp.Body)
		}
	})
}
