// clone.js: the structured clone algorithm behind structuredClone and the
// env.state envelope (jsonclone.js). The prelude compiles it on first use
// (host op "lib"), so a session that never needs it does not carry it.
//
// serialize turns a value into a JSON-shaped record graph and deserialize
// rebuilds it, so one implementation serves both structuredClone (records
// kept in memory, ArrayBuffers copied) and env.state (records written as
// JSON, ArrayBuffers as base64). A value is encoded as a JSON primitive
// (string, finite number, boolean, null) or a tagged array:
//   ["u"] undefined, ["n", "NaN" | "Infinity" | "-Infinity" | "-0"],
//   ["b", "123"] BigInt, ["r", i] the object recorded at objs[i].
// Object records (each object once, so shared references and cycles keep
// their shape): ["O", [k, v, ...]] object, ["A", length, [k, v, ...]]
// array, ["D", ms] Date, ["R", source, flags] RegExp, ["M", [k, v, ...]]
// Map, ["S", [v, ...]] Set, ["E", name, message, stack, cause] Error,
// ["X", name, message] DOMException, ["L", bytes, type] Blob,
// ["F", bytes, type, name, lastModified] File, ["B", bytes] ArrayBuffer, ["V", type, buffer, byteOffset, length] typed
// array or DataView, ["P", type, value] boxed primitive, ["K", key]
// CryptoKey (memory only).
//
// platform is the prelude's set of the runtime's class prototypes and
// singleton objects: an object that is one or inherits from one is a
// platform object, cloned only when handled above (Blob, File, CryptoKey)
// and otherwise refused, as the HTML standard refuses what is not
// serializable. blobs(load) is webapi.js's exports (Blob, File), or null
// when it is not loaded and load is false.
(function (b64enc, b64dec, cloneKey, DOMException, platform, blobs) {
  "use strict";
  const fail = (msg) => new DOMException(msg, "DataCloneError");
  const VIEWS = ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
    "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array", "DataView"]
    .filter((n) => typeof globalThis[n] === "function").map((n) => [n, globalThis[n]]);
  const ERRORS = { __proto__: null, Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
  // Objects whose state is not their own enumerable properties cannot be
  // cloned (and neither can platform objects).
  const REFUSED = new Set(["WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Promise", "Generator", "AsyncGenerator", "Module", "SharedArrayBuffer"]);
  const tagOf = (v) => Object.prototype.toString.call(v).slice(8, -1);
  const isPlatform = (v) => {
    if (platform.has(v)) return true;
    for (let p = Object.getPrototypeOf(v); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) if (platform.has(p)) return true;
    return false;
  };

  // serialize returns {v, o}: the encoded value and the object records.
  // json: ArrayBuffers become base64 and CryptoKeys are refused. Neither
  // serialize nor deserialize recurses, so nesting depth is bounded by
  // memory, not by the (small) JS stack.
  function serialize(value, json) {
    const objs = [], ids = new Map(), todo = [];
    function enc(v) {
      switch (typeof v) {
        case "string": case "boolean": return v;
        case "undefined": return ["u"];
        case "number":
          if (Object.is(v, -0)) return ["n", "-0"];
          return Number.isFinite(v) ? v : ["n", String(v)];
        case "bigint": return ["b", v.toString()];
        case "symbol": throw fail("a Symbol could not be cloned");
        case "function": throw fail(`function ${v.name || "(anonymous)"} could not be cloned`);
      }
      if (v === null) return null;
      let i = ids.get(v);
      if (i === undefined) {
        i = objs.length;
        ids.set(v, i);
        objs.push(null);
        todo.push(v);
      }
      return ["r", i];
    }
    const props = (o) => { const out = []; for (const k of Object.keys(o)) out.push(k, enc(o[k])); return out; };
    function record(v) {
      if (Array.isArray(v)) return ["A", v.length, props(v)];
      if (v instanceof Date) return ["D", enc(v.getTime())];
      if (v instanceof RegExp) return ["R", v.source, v.flags];
      if (v instanceof Map) { const out = []; for (const [k, x] of v) out.push(enc(k), enc(x)); return ["M", out]; }
      if (v instanceof Set) return ["S", Array.from(v, enc)];
      if (v instanceof ArrayBuffer) return ["B", json ? b64enc(v) : v.slice(0)];
      if (ArrayBuffer.isView(v)) {
        const t = VIEWS.find(([, C]) => v instanceof C);
        if (!t) throw fail(`${tagOf(v)} could not be cloned`);
        return ["V", t[0], enc(v.buffer), v.byteOffset, t[0] === "DataView" ? v.byteLength : v.length];
      }
      if (v instanceof DOMException) return ["X", String(v.name), String(v.message)];
      if (v instanceof Error) {
        const name = v.name in ERRORS ? v.name : "Error";
        const cause = Object.prototype.hasOwnProperty.call(v, "cause") ? enc(v.cause) : ["u"];
        return ["E", name, typeof v.message === "string" ? v.message : ["u"], typeof v.stack === "string" ? v.stack : ["u"], cause];
      }
      if (v instanceof Boolean) return ["P", "Boolean", v.valueOf()];
      if (v instanceof Number) return ["P", "Number", enc(v.valueOf())];
      if (v instanceof String) return ["P", "String", v.valueOf()];
      if (typeof BigInt === "function" && tagOf(v) === "BigInt") return ["P", "BigInt", enc(v.valueOf())];
      const w = blobs(false);
      if (w !== null && v instanceof w.Blob) {
        if (!(v._b instanceof ArrayBuffer)) throw fail(`${tagOf(v)} object could not be cloned`);
        const bytes = json ? b64enc(v._b) : v._b.slice(0);
        // The internal slots, not the getters a subclass may override.
        const type = typeof v._t === "string" ? v._t : "";
        return v instanceof w.File ? ["F", bytes, type, typeof v._n === "string" ? v._n : "", enc(typeof v._m === "number" ? v._m : 0)] : ["L", bytes, type];
      }
      const key = cloneKey(v);
      if (key !== undefined) {
        if (json) throw fail("a CryptoKey cannot be stored; export it (exportKey) and store the bytes or JWK");
        return ["K", key];
      }
      if (REFUSED.has(tagOf(v)) || isPlatform(v)) throw fail(`${tagOf(v)} object could not be cloned`);
      return ["O", props(v)];
    }
    const top = enc(value);
    for (let i = 0; i < todo.length; i++) objs[i] = record(todo[i]);
    return { v: top, o: objs };
  }

  // deserialize makes every object's shell first, then fills them in.
  function deserialize(rec, json) {
    const bad = (why) => { throw fail(`malformed structured-clone record: ${why}`); };
    if (!("v" in rec) || !Array.isArray(rec.o)) bad("no value or no object list");
    const objs = rec.o, built = new Array(objs.length);
    const list = (x) => (Array.isArray(x) ? x : bad("a list is not an array"));
    const pairList = (x) => (list(x).length % 2 === 0 ? x : bad("a key-value list has an odd length"));
    function dec(e) {
      if (e === null || typeof e !== "object") return e;
      if (!Array.isArray(e)) bad("a value is an object");
      switch (e[0]) {
        case "u": return undefined;
        case "n": return e[1] === "-0" ? -0 : Number(e[1]);
        case "b": return BigInt(e[1]);
        case "r": if (Number.isInteger(e[1]) && e[1] >= 0 && e[1] < objs.length) return shell(e[1]); bad(`no object ${e[1]}`);
      }
      bad(`value tag ${JSON.stringify(e[0])}`);
    }
    // shell builds object i without its children; only a view reaches
    // further, to its buffer, which has none.
    const BUILDING = {};
    function shell(i) {
      if (built[i] === BUILDING) bad(`object ${i} refers to itself`);
      if (built[i] !== undefined) return built[i];
      built[i] = BUILDING;
      const r = objs[i];
      if (!Array.isArray(r)) bad(`object ${i} is not a record`);
      let o;
      switch (r[0]) {
        case "O": o = {}; break;
        case "A": o = new Array(Number.isInteger(r[1]) && r[1] >= 0 && r[1] < 2 ** 32 ? r[1] : bad("array length")); break;
        case "D": o = new Date(typeof r[1] === "number" ? r[1] : dec(r[1])); break;
        case "R": o = new RegExp(String(r[1]), String(r[2])); break;
        case "M": o = new Map(); break;
        case "S": o = new Set(); break;
        case "B": o = json ? b64dec(typeof r[1] === "string" ? r[1] : bad("bytes are not base64")) : r[1].slice(0); break;
        case "V": {
          const t = VIEWS.find(([n]) => n === r[1]);
          if (!t) bad(`view type ${r[1]}`);
          const buf = dec(r[2]);
          if (!(buf instanceof ArrayBuffer)) bad("a view's buffer is not an ArrayBuffer");
          o = new t[1](buf, r[3], r[4]);
          break;
        }
        case "E": o = Object.create((ERRORS[r[1]] || Error).prototype); break;
        case "X": o = new DOMException(String(r[2]), String(r[1])); break;
        case "P": {
          const v = r[2] !== null && typeof r[2] === "object" && r[2][0] === "r" ? bad("a boxed object") : dec(r[2]);
          o = Object(v);
          break;
        }
        case "K": if (json) bad("a CryptoKey"); o = cloneKey(r[1]); break;
        case "L": case "F": {
          const bytes = json ? b64dec(typeof r[1] === "string" ? r[1] : bad("bytes are not base64")) : r[1];
          if (!(bytes instanceof ArrayBuffer)) bad("a Blob's bytes are not an ArrayBuffer");
          const w = blobs(true), type = String(r[2]);
          o = r[0] === "L" ? new w.Blob([bytes], { type }) : new w.File([bytes], String(r[3]), { type, lastModified: dec(r[4]) });
          break;
        }
        default: bad(`object tag ${JSON.stringify(r[0])}`);
      }
      built[i] = o;
      return o;
    }
    // define rather than assign: a key "__proto__" stays a key.
    const put = (o, k, v) => Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
    for (let i = 0; i < objs.length; i++) {
      const o = shell(i), r = objs[i];
      switch (r[0]) {
        case "O": case "A": {
          const kv = pairList(r[0] === "O" ? r[1] : r[2]);
          for (let j = 0; j + 1 < kv.length; j += 2) put(o, String(kv[j]), dec(kv[j + 1]));
          break;
        }
        case "M": { const kv = pairList(r[1]); for (let j = 0; j + 1 < kv.length; j += 2) o.set(dec(kv[j]), dec(kv[j + 1])); break; }
        case "S": for (const x of list(r[1])) o.add(dec(x)); break;
        case "E":
          for (const [k, x] of [["message", r[2]], ["stack", r[3]], ["cause", r[4]]]) {
            const v = dec(x);
            if (v !== undefined) Object.defineProperty(o, k, { value: v, writable: true, configurable: true });
          }
          break;
      }
    }
    return dec(rec.v);
  }

  // structuredClone is the record walk; jsonclone.js tries its JSON fast
  // path first.
  const structuredClone = (value) => deserialize(serialize(value, false), false);
  return { structuredClone, serialize, deserialize };
})
