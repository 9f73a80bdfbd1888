// jsonclone.js: the JSON side of structured clone, included into prelude.js
// (see preludeSource in isolate.go): structuredClone's fast path for values
// JSON represents exactly, and the form env.state stores values in. The
// record walk for everything else is clone.js, which clone() compiles on
// first use.
//
// A value JSON represents exactly is stored as its JSON text, as before
// structured clone; anything else (Map, Date, undefined, -0, NaN, BigInt, a
// typed array, shared references, cycles, a prototype other than Object's,
// a top-level object with the key ENVELOPE) as {"__ac_sc": 1, "v": ...,
// "o": [...]}, clone.js's records with bytes in base64.
(function (clone, DOMException) {
  "use strict";
  const fail = (msg) => new DOMException(msg, "DataCloneError");
  const ENVELOPE = "__ac_sc";
  const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

  // plainJSON is JSON.stringify(value) when JSON represents value exactly
  // (and JSON.parse gives it back), else undefined: a replacer looks at
  // each raw value (before toJSON) and gives up at the first that JSON
  // would change or drop: undefined, a function, a symbol, a BigInt, NaN,
  // ±Infinity, -0, an array hole or extra property, a prototype other than
  // Object's or Array's, a toJSON method, an object met twice (a cycle or
  // a shared reference). This costs about two JSON.stringify calls; the
  // record walk costs ten.
  const NOT_PLAIN = {};
  function plainJSON(value) {
    const seen = new Set();
    function check(k, v) {
      const raw = this[k];
      switch (typeof raw) {
        case "string": case "boolean": return v;
        case "number": if (Number.isFinite(raw) && !Object.is(raw, -0)) return v; throw NOT_PLAIN;
        case "object": break;
        default: throw NOT_PLAIN;
      }
      if (raw === null) return v;
      if (seen.has(raw)) throw NOT_PLAIN;
      seen.add(raw);
      const p = Object.getPrototypeOf(raw);
      if (Array.isArray(raw)) {
        if (p !== Array.prototype || Object.keys(raw).length !== raw.length) throw NOT_PLAIN;
        for (let i = 0; i < raw.length; i++) {
          const c = raw[i];
          if (c !== null && typeof c === "object" && typeof c.toJSON === "function") throw NOT_PLAIN;
        }
      } else {
        if ((p !== Object.prototype && p !== null) || typeof raw.toJSON === "function") throw NOT_PLAIN;
        // Run no getter and no child's toJSON here: stringify would, and
        // the record walk (which reads each property once, as structured
        // clone does) would run them again.
        const ds = Object.getOwnPropertyDescriptors(raw);
        for (const key in ds) {
          const d = ds[key];
          if (!("value" in d)) throw NOT_PLAIN;
          const c = d.value;
          if (c !== null && typeof c === "object" && typeof c.toJSON === "function") throw NOT_PLAIN;
        }
      }
      return v;
    }
    // Any throw gives up too: NOT_PLAIN, a RangeError (too deep for native
    // JSON), or a toJSON method (which structured clone never calls) that
    // threw; the record walk then decides.
    if (value !== null && typeof value === "object" && typeof value.toJSON === "function") return undefined;
    try { return JSON.stringify(value, check); } catch (_) { return undefined; }
  }

  function structuredClone(value, options) {
    if (options && options.transfer && Array.from(options.transfer).length) throw fail("structuredClone: transfer is not supported");
    const s = plainJSON(value);
    return s !== undefined ? JSON.parse(s) : clone().structuredClone(value);
  }

  function encodeState(value) {
    if (!(value !== null && typeof value === "object" && !Array.isArray(value) && hasOwn(value, ENVELOPE))) {
      const s = plainJSON(value);
      if (s !== undefined) return s;
    }
    try {
      const { v, o } = clone().serialize(value, true);
      return JSON.stringify({ [ENVELOPE]: 1, v, o });
    } catch (e) {
      if (e instanceof DOMException && e.name === "DataCloneError") throw fail(`env.state: ${e.message}`);
      throw e;
    }
  }
  function decodeState(v) {
    if (v !== null && typeof v === "object" && !Array.isArray(v) && hasOwn(v, ENVELOPE)) {
      if (v[ENVELOPE] !== 1) throw fail(`stored value has ${ENVELOPE} ${JSON.stringify(v[ENVELOPE])}; this runtime reads version 1`);
      return clone().deserialize(v, true);
    }
    return v;
  }
  return { structuredClone, encodeState, decodeState };
})
