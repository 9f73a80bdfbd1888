// webcrypto.js: crypto.subtle and CryptoKey, compiled by the prelude on
// first use (host op "lib", preludeLibs in isolate.go). It normalizes
// algorithms and enforces usages and extractability as WebCrypto specifies; every
// cryptographic operation is one host call, "subtle" (webcrypto.go), into
// Go's crypto. A CryptoKey keeps its key material as an ArrayBuffer in a
// WeakMap here, in the JS heap: it survives snapshots and hibernation, and
// the Go side needs no state between calls.
(function (host, toAB, enc, DOMException) {
  "use strict";
  const DOM_NAMES = new Set(["NotSupportedError", "InvalidAccessError", "DataError", "OperationError", "SyntaxError", "QuotaExceededError"]);
  const fail = (name, msg) => new DOMException(msg, name);
  // sub is the host call; the DOMException names of webcrypto.go become
  // DOMException instances.
  const sub = (op, params, ...bufs) => {
    try { return host("subtle", op, JSON.stringify(params), ...bufs); } catch (e) {
      if (e instanceof Error && DOM_NAMES.has(e.name) && !(e instanceof DOMException)) throw fail(e.name, e.message);
      throw e;
    }
  };

  const ALGS = { __proto__: null, hmac: "HMAC", "aes-gcm": "AES-GCM", ecdsa: "ECDSA", ed25519: "Ed25519",
    "rsassa-pkcs1-v1_5": "RSASSA-PKCS1-v1_5", hkdf: "HKDF", pbkdf2: "PBKDF2",
    "sha-1": "SHA-1", "sha-256": "SHA-256", "sha-384": "SHA-384", "sha-512": "SHA-512" };
  const SIGN = ["HMAC", "ECDSA", "Ed25519", "RSASSA-PKCS1-v1_5"];
  const OPS = { __proto__: null,
    importKey: ["HMAC", "AES-GCM", "ECDSA", "Ed25519", "RSASSA-PKCS1-v1_5", "HKDF", "PBKDF2"],
    generateKey: ["HMAC", "AES-GCM", "ECDSA", "Ed25519", "RSASSA-PKCS1-v1_5"],
    sign: SIGN, verify: SIGN, encrypt: ["AES-GCM"], decrypt: ["AES-GCM"],
    deriveBits: ["HKDF", "PBKDF2"], digest: ["SHA-1", "SHA-256", "SHA-384", "SHA-512"],
    get: ["HMAC", "AES-GCM"] };
  // USAGES[alg][type] are the usages a key of that type may have.
  const sigUsages = { public: ["verify"], private: ["sign"] };
  const USAGES = { __proto__: null, HMAC: { secret: ["sign", "verify"] },
    "AES-GCM": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
    ECDSA: sigUsages, Ed25519: sigUsages, "RSASSA-PKCS1-v1_5": sigUsages,
    HKDF: { secret: ["deriveKey", "deriveBits"] }, PBKDF2: { secret: ["deriveKey", "deriveBits"] } };
  const KEY_USAGES = ["encrypt", "decrypt", "sign", "verify", "deriveKey", "deriveBits", "wrapKey", "unwrapKey"];
  const FORMATS = ["raw", "spki", "pkcs8", "jwk"];
  const BLOCK_BITS = { "SHA-1": 512, "SHA-256": 512, "SHA-384": 1024, "SHA-512": 1024 };

  // normalize returns {name, params} for an AlgorithmIdentifier and op, or
  // throws NotSupportedError as WebCrypto's normalization does.
  function normalize(alg, op) {
    if (typeof alg === "string") alg = { name: alg };
    if (alg === null || typeof alg !== "object" || typeof alg.name !== "string") throw new TypeError(`${op}: the algorithm needs a name`);
    const name = ALGS[alg.name.toLowerCase()];
    if (name === undefined || !OPS[op].includes(name)) throw fail("NotSupportedError", `${op}: unrecognized or unsupported algorithm ${JSON.stringify(alg.name)}`);
    return { name, a: alg };
  }
  function hashName(h, what) {
    if (h === undefined) throw new TypeError(`${what} needs a hash`);
    return normalize(h, "digest").name;
  }
  function bytes(x, what) {
    if (x instanceof ArrayBuffer || ArrayBuffer.isView(x)) return toAB(x).slice(0);
    throw new TypeError(`${what} must be an ArrayBuffer or ArrayBufferView`);
  }
  function usageList(usages, what) {
    if (usages === null || typeof usages !== "object" || typeof usages[Symbol.iterator] !== "function") throw new TypeError(`${what}: keyUsages must be a sequence`);
    const out = [];
    for (const u of usages) {
      if (!KEY_USAGES.includes(u)) throw new TypeError(`${what}: ${JSON.stringify(u)} is not a KeyUsage`);
      if (!out.includes(u)) out.push(u);
    }
    return out;
  }

  // ---- CryptoKey ----
  const slots = new WeakMap();
  class CryptoKey {
    constructor() { throw new TypeError("Illegal constructor"); }
    get type() { return slot(this).type; }
    get extractable() { return slot(this).extractable; }
    get algorithm() { return slot(this).algorithm; }
    get usages() { return slot(this).usages; }
    get [Symbol.toStringTag]() { return "CryptoKey"; }
  }
  function slot(k, what) {
    const s = slots.get(k);
    if (s === undefined) throw new TypeError(`${what || "CryptoKey"}: not a CryptoKey`);
    return s;
  }
  // makeKey builds a CryptoKey; k = {type, extractable, usages, material,
  // name, hash, length, curve, modulusLength, publicExponent}.
  function makeKey(k) {
    const key = Object.create(CryptoKey.prototype);
    const algorithm = { name: k.name };
    if (k.hash) algorithm.hash = { name: k.hash };
    if (k.name === "HMAC" || k.name === "AES-GCM") algorithm.length = k.length;
    if (k.curve) algorithm.namedCurve = k.curve;
    if (k.modulusLength) { algorithm.modulusLength = k.modulusLength; algorithm.publicExponent = new Uint8Array(k.publicExponent); }
    slots.set(key, Object.freeze({ ...k, algorithm: Object.freeze(algorithm), usages: Object.freeze(k.usages.slice()) }));
    return key;
  }
  // cloneKey copies a CryptoKey (for structuredClone).
  function cloneKey(key) {
    const s = slots.get(key);
    if (s === undefined) return undefined;
    const c = Object.create(CryptoKey.prototype);
    slots.set(c, s);
    return c;
  }
  // use checks that key may do op with algorithm name.
  function use(key, name, usage, op) {
    const s = slot(key, op);
    if (s.name !== name) throw fail("InvalidAccessError", `${op}: the key is a ${s.name} key, not ${name}`);
    if (!s.usages.includes(usage)) throw fail("InvalidAccessError", `${op}: the key's usages do not include "${usage}"`);
    return s;
  }
  function checkUsages(name, type, usages, op) {
    const allowed = USAGES[name][type];
    for (const u of usages) if (!allowed.includes(u)) throw fail("SyntaxError", `${op}: a ${type} ${name} key cannot be used to ${u}`);
    if ((type === "secret" || type === "private") && usages.length === 0) throw fail("SyntaxError", `${op}: a ${type} key needs at least one usage`);
  }
  const b64 = (b) => btoa(Array.from(new Uint8Array(b), (c) => String.fromCharCode(c)).join(""));

  // keyParams reads the import/generate parameters of a normalized algorithm.
  function keyParams(n, op) {
    const p = { alg: n.name };
    if (n.name === "HMAC" || n.name === "RSASSA-PKCS1-v1_5") p.hash = hashName(n.a.hash, `${op} ${n.name}`);
    if (n.name === "ECDSA") {
      if (typeof n.a.namedCurve !== "string") throw new TypeError(`${op} ECDSA needs a namedCurve`);
      p.curve = n.a.namedCurve;
      if (!["P-256", "P-384", "P-521"].includes(p.curve)) throw fail("NotSupportedError", `${op}: named curve ${JSON.stringify(p.curve)}`);
    }
    if (n.a.length !== undefined) p.length = Number(n.a.length);
    return p;
  }

  async function importKey(format, keyData, algorithm, extractable, keyUsages) {
    const n = normalize(algorithm, "importKey");
    format = String(format);
    if (!FORMATS.includes(format)) throw new TypeError(`importKey: format ${JSON.stringify(format)} is not raw, spki, pkcs8 or jwk`);
    const usages = usageList(keyUsages, "importKey");
    extractable = !!extractable;
    let data;
    if (format === "jwk") {
      if (keyData === null || typeof keyData !== "object" || ArrayBuffer.isView(keyData) || keyData instanceof ArrayBuffer) throw new TypeError("importKey: a jwk is an object");
      data = enc(JSON.stringify(keyData));
    } else {
      data = bytes(keyData, "importKey: keyData");
    }
    if ((n.name === "HKDF" || n.name === "PBKDF2") && extractable) throw fail("SyntaxError", `importKey: ${n.name} keys are not extractable`);
    if ((n.name === "HKDF" || n.name === "PBKDF2") && format !== "raw") throw fail("NotSupportedError", `importKey: ${n.name} keys import only as raw`);
    const p = keyParams(n, "importKey");
    p.format = format; p.extractable = extractable; p.usages = usages;
    const [type, material, meta] = sub("import", p, data);
    checkUsages(n.name, type, usages, "importKey");
    const m = JSON.parse(meta);
    return makeKey({ type, extractable, usages, material, name: n.name, hash: p.hash, curve: p.curve, length: m.length,
      modulusLength: m.modulusLength, publicExponent: m.publicExponent && Uint8Array.from(atob(m.publicExponent), (c) => c.charCodeAt(0)) });
  }

  async function exportKey(format, key) {
    format = String(format);
    if (!FORMATS.includes(format)) throw new TypeError(`exportKey: format ${JSON.stringify(format)} is not raw, spki, pkcs8 or jwk`);
    const s = slot(key, "exportKey");
    if (!s.extractable) throw fail("InvalidAccessError", "exportKey: the key is not extractable");
    const out = sub("export", { alg: s.name, format, type: s.type, hash: s.hash, curve: s.curve, extractable: s.extractable, usages: s.usages.slice() }, s.material);
    return format === "jwk" ? JSON.parse(out) : out;
  }

  async function generateKey(algorithm, extractable, keyUsages) {
    const n = normalize(algorithm, "generateKey");
    const usages = usageList(keyUsages, "generateKey");
    extractable = !!extractable;
    const p = keyParams(n, "generateKey");
    if (n.name === "RSASSA-PKCS1-v1_5") {
      p.modulusLength = Number(n.a.modulusLength);
      if (!(n.a.publicExponent instanceof Uint8Array)) throw new TypeError("generateKey RSASSA-PKCS1-v1_5 needs a publicExponent Uint8Array");
      p.publicExponent = b64(n.a.publicExponent);
    }
    if (n.name === "AES-GCM" && n.a.length === undefined) throw new TypeError("generateKey AES-GCM needs a length");
    const all = USAGES[n.name];
    for (const u of usages) if (!Object.values(all).some((l) => l.includes(u))) throw fail("SyntaxError", `generateKey: a ${n.name} key cannot be used to ${u}`);
    const out = sub("generate", p);
    const base = { name: n.name, hash: p.hash, curve: p.curve };
    if (out[0] === "secret") {
      checkUsages(n.name, "secret", usages, "generateKey");
      return makeKey({ ...base, type: "secret", extractable, usages, material: out[1], length: out[1].byteLength * 8 });
    }
    const priv = usages.filter((u) => all.private.includes(u)), pub = usages.filter((u) => all.public.includes(u));
    if (priv.length === 0) throw fail("SyntaxError", "generateKey: the private key needs at least one usage");
    if (n.name === "RSASSA-PKCS1-v1_5") { base.modulusLength = p.modulusLength; base.publicExponent = n.a.publicExponent.slice(); }
    return {
      publicKey: makeKey({ ...base, type: "public", extractable: true, usages: pub, material: out[1] }),
      privateKey: makeKey({ ...base, type: "private", extractable, usages: priv, material: out[3] }),
    };
  }

  function signParams(n, s, op) {
    const p = { alg: n.name, type: s.type, hash: s.hash };
    if (n.name === "ECDSA") p.hash = hashName(n.a.hash, `${op} ECDSA`);
    return p;
  }
  async function sign(algorithm, key, data) {
    const n = normalize(algorithm, "sign");
    data = bytes(data, "sign: data");
    const s = use(key, n.name, "sign", "sign");
    return sub("sign", signParams(n, s, "sign"), s.material, data);
  }
  async function verify(algorithm, key, signature, data) {
    const n = normalize(algorithm, "verify");
    signature = bytes(signature, "verify: signature");
    data = bytes(data, "verify: data");
    const s = use(key, n.name, "verify", "verify");
    return sub("verify", signParams(n, s, "verify"), s.material, signature, data) === 1;
  }

  function gcm(op, algorithm, key, data) {
    const n = normalize(algorithm, op);
    const iv = bytes(n.a.iv, `${op} AES-GCM: iv`);
    const aad = n.a.additionalData === undefined ? new ArrayBuffer(0) : bytes(n.a.additionalData, `${op} AES-GCM: additionalData`);
    data = bytes(data, `${op}: data`);
    const s = use(key, n.name, op, op);
    return sub(op, { alg: n.name, tagLength: n.a.tagLength === undefined ? 128 : Number(n.a.tagLength) }, s.material, iv, data, aad);
  }
  const encrypt = async (algorithm, key, data) => gcm("encrypt", algorithm, key, data);
  const decrypt = async (algorithm, key, data) => gcm("decrypt", algorithm, key, data);

  function derive(algorithm, baseKey, length, usage, op) {
    const n = normalize(algorithm, "deriveBits");
    const p = { alg: n.name, hash: hashName(n.a.hash, `${op} ${n.name}`) };
    const salt = bytes(n.a.salt, `${op} ${n.name}: salt`);
    let info = new ArrayBuffer(0);
    if (n.name === "HKDF") info = bytes(n.a.info, `${op} HKDF: info`);
    else {
      p.iterations = Number(n.a.iterations);
      if (n.a.iterations === undefined) throw new TypeError(`${op} PBKDF2 needs iterations`);
      if (p.iterations === 0) throw fail("OperationError", `${op} PBKDF2: iterations is 0`);
    }
    if (length === null || length === undefined) throw fail("OperationError", `${op}: ${n.name} needs a length`);
    p.length = Number(length);
    if (!Number.isInteger(p.length) || p.length < 0) throw new TypeError(`${op}: length must be a non-negative integer`);
    if (p.length === 0) return new ArrayBuffer(0);
    const s = use(baseKey, n.name, usage, op);
    return sub("deriveBits", p, s.material, salt, info);
  }
  const deriveBits = async (algorithm, baseKey, length) => derive(algorithm, baseKey, length, "deriveBits", "deriveBits");
  async function deriveKey(algorithm, baseKey, derivedKeyAlgorithm, extractable, keyUsages) {
    const d = normalize(derivedKeyAlgorithm, "get");
    let length;
    if (d.name === "AES-GCM") {
      length = Number(d.a.length);
      if (![128, 192, 256].includes(length)) throw fail("OperationError", `deriveKey: AES-GCM length ${d.a.length} is not 128, 192 or 256`);
    } else {
      const h = hashName(d.a.hash, "deriveKey HMAC");
      length = d.a.length === undefined ? BLOCK_BITS[h] : Number(d.a.length);
    }
    usageList(keyUsages, "deriveKey");
    const bits = derive(algorithm, baseKey, length, "deriveKey", "deriveKey");
    return importKey("raw", bits, derivedKeyAlgorithm, extractable, keyUsages);
  }

  async function digest(algorithm, data) {
    const n = normalize(algorithm, "digest");
    return host("digest", n.name, typeof data === "string" ? enc(data) : bytes(data, "digest: data"));
  }
  // timingSafeEqual is Cloudflare Workers' constant-time comparison
  // (not WebCrypto): inputs of different lengths are a TypeError.
  function timingSafeEqual(a, b) {
    return sub("timingSafeEqual", {}, bytes(a, "timingSafeEqual: a"), bytes(b, "timingSafeEqual: b")) === 1;
  }
  const notSupported = (op) => async () => { throw fail("NotSupportedError", `crypto.subtle.${op} is not supported`); };

  class SubtleCrypto { constructor() { throw new TypeError("Illegal constructor"); } }
  const subtle = Object.create(SubtleCrypto.prototype);
  for (const [k, f] of Object.entries({ digest, importKey, exportKey, generateKey, sign, verify, encrypt, decrypt, deriveBits, deriveKey, timingSafeEqual,
    wrapKey: notSupported("wrapKey"), unwrapKey: notSupported("unwrapKey") })) {
    Object.defineProperty(SubtleCrypto.prototype, k, { value: f, writable: true, configurable: true, enumerable: true });
  }
  return { subtle, CryptoKey, SubtleCrypto, cloneKey };
})
