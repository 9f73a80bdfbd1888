// prelude.js: web-standard APIs for agent modules on QuickJS, backed by the
// single host function __ac_host(op, ...args) (see hostcall.go). Evaluated
// once per isolate before the agent module; its completion value is the
// driver object Go calls (see driverFnNames in vm.go). Everything here lives
// in the JS heap, so it survives snapshots like agent globals do.
(function (host) {
  "use strict";
  delete globalThis.__ac_host;
  // The engine's own globals; whatever else is global when the prelude
  // ends is the runtime's (see platform below).
  const engineGlobals = new Set(Reflect.ownKeys(globalThis));
  // A host error (isolate.HostError) arrives as an Error carrying its class
  // name as the name property; the standard classes are rebuilt as such.
  const rawHost = host;
  const ctors = { __proto__: null, TypeError, RangeError, SyntaxError };
  host = (...a) => {
    try { return rawHost(...a); } catch (e) {
      const C = e instanceof Error ? ctors[e.name] : undefined;
      if (C && !(e instanceof C)) throw new C(e.message);
      throw e;
    }
  };

  const def = (obj, name, value) =>
    Object.defineProperty(obj, name, { value, writable: true, configurable: true, enumerable: false });

  // ---- console ----
  function fmt(v, depth) {
    if (typeof v === "string") return v;
    if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}` : `${v.name}: ${v.message}`;
    if (v === undefined || typeof v === "function" || typeof v === "symbol" || typeof v === "bigint") return String(v);
    if (depth > 0 && typeof v === "object" && v !== null) {
      try { return JSON.stringify(v); } catch (_) { return Object.prototype.toString.call(v); }
    }
    return String(v);
  }
  const console = {};
  for (const level of ["log", "info", "warn", "error", "debug"]) {
    console[level] = (...args) => { host("log", level, args.map((a) => fmt(a, 1)).join(" ")); };
  }
  console.trace = console.debug;
  def(globalThis, "console", console);

  // ---- encoding ----
  function toU8(data) {
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw new TypeError("expected an ArrayBuffer or ArrayBufferView");
  }
  // toAB returns an ArrayBuffer holding exactly the view's bytes.
  function toAB(data) {
    if (data instanceof ArrayBuffer) return data;
    const u = toU8(data);
    if (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength) return u.buffer;
    return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength);
  }
  class TextEncoder {
    get encoding() { return "utf-8"; }
    encode(s = "") { return new Uint8Array(host("utf8.encode", String(s))); }
    encodeInto(s, dest) {
      const b = this.encode(s);
      const n = Math.min(b.length, dest.length);
      dest.set(b.subarray(0, n));
      return { read: String(s).length, written: n };
    }
  }
  // TextDecoder decodes UTF-8, UTF-16LE/BE and windows-1252 in Go (host
  // ops "text.label" and "text.decode", textdecode.go). A streamed decode
  // keeps the bytes of an unfinished sequence (_rest) for the next call;
  // _bom says the stream is past its start, where a BOM is dropped.
  const NO_BYTES = new ArrayBuffer(0);
  class TextDecoder {
    constructor(label = "utf-8", opts = {}) {
      label = String(label);
      const e = label === "utf-8" || label === "utf8" ? "utf-8" : host("text.label", label);
      if (e === undefined) throw new RangeError(`TextDecoder: unsupported encoding ${label}`);
      this._e = e; this._f = !!(opts && opts.fatal); this._i = !!(opts && opts.ignoreBOM);
    }
    get encoding() { return this._e; }
    get fatal() { return this._f; }
    get ignoreBOM() { return this._i; }
    decode(data, opts) {
      const stream = !!(opts && opts.stream);
      let ab = data === undefined ? NO_BYTES : toAB(data), s;
      if (this._rest !== null) {
        const all = new Uint8Array(this._rest.byteLength + ab.byteLength);
        all.set(new Uint8Array(this._rest)); all.set(new Uint8Array(ab), this._rest.byteLength);
        ab = all.buffer; this._rest = null;
      }
      if (!stream && !this._f && this._e === "utf-8") s = ab.byteLength === 0 ? "" : host("utf8.decode", ab, 0);
      else {
        try { s = host("text.decode", this._e, ab, (this._f ? 1 : 0) | (stream ? 2 : 0)); } catch (e) { this._bom = false; throw e; }
        if (typeof s !== "string") { this._rest = ab.slice(ab.byteLength - s[1]); s = s[0]; }
      }
      if (!this._bom && s !== "") {
        this._bom = true;
        if (!this._i && s.charCodeAt(0) === 0xfeff && this._e !== "windows-1252") s = s.slice(1);
      }
      if (!stream) this._bom = false;
      return s;
    }
    get [Symbol.toStringTag]() { return "TextDecoder"; }
  }
  def(TextDecoder.prototype, "_rest", null); def(TextDecoder.prototype, "_bom", false);
  def(globalThis, "TextEncoder", TextEncoder);
  def(globalThis, "TextDecoder", TextDecoder);
  const enc = (s) => host("utf8.encode", s);
  const dec = (ab) => host("utf8.decode", ab, 0);

  // QuickJS-NG has DOMException; captured before agent code can replace it.
  const DOMException = globalThis.DOMException;

  // ---- crypto ----
  // webcrypto.js and clone.js are compiled on first use (the host op "lib"
  // answers their source): every object in the heap costs each session GC
  // time and dirty pages, so sessions that never use them do not carry them.
  const geval = eval;
  let wc = null, cl = null;
  // platform holds the prototype of every class the runtime defines (and
  // its singleton objects, such as console): structuredClone refuses their
  // instances, bar those clone.js knows (Blob, File, CryptoKey), instead of
  // copying internal fields into a plain object. The prelude's globals are
  // added when it ends, each library's exports as it loads (mark).
  const platform = new Set();
  const addPlatform = (v) => {
    if (typeof v === "function") {
      const p = Object.getOwnPropertyDescriptor(v, "prototype");
      if (p && !p.writable && p.value !== null && typeof p.value === "object") platform.add(p.value); // a class
    } else if (v !== null && typeof v === "object") platform.add(v);
  };
  const mark = (lib) => { for (const k of Object.keys(lib)) if (typeof lib[k] === "function") addPlatform(lib[k]); return lib; };
  const webcrypto = () => wc || (wc = mark(geval(host("lib", "webcrypto.js"))(host, toAB, enc, DOMException)));
  const clone = () => cl || (cl = geval(host("lib", "clone.js"))((ab) => host("base64.encode", ab), (s) => host("base64.decode", String(s)),
    (v) => (wc === null ? undefined : wc.cloneKey(v)), DOMException, platform, (load) => wal || (load ? webapi() : null)));
  // streams.js (generated from web-streams-polyfill) likewise.
  let stl = null;
  const streams = () => stl || (stl = mark(geval(host("lib", "streams.js"))(host, toAB, enc, dec)));
  const lazyGlobals = (names, lib) => { for (const name of names) Object.defineProperty(globalThis, name, { get: () => lib()[name], set(v) { def(globalThis, name, v); }, configurable: true }); };
  // identitystream.js: IdentityTransformStream and FixedLengthStream.
  let isl = null;
  const identityStreams = () => isl || (isl = mark(geval(host("lib", "identitystream.js"))(streams().TransformStream)));
  lazyGlobals(["IdentityTransformStream", "FixedLengthStream"], identityStreams);
  // websocket.js too; invoke is defined below, before anything calls this.
  let wsl = null;
  const websockets = () => wsl || (wsl = mark(geval(host("lib", "websocket.js"))(invoke, toAB, (ab) => host("base64.encode", ab), webapi)));
  // webapi.js: events, Blob, File, FormData and multipart bodies.
  let wal = null;
  const webapi = () => wal || (wal = mark(geval(host("lib", "webapi.js"))(host, toAB, enc, dec, DOMException)));
  lazyGlobals(["Event", "CustomEvent", "MessageEvent", "CloseEvent", "ErrorEvent", "PromiseRejectionEvent", "EventTarget", "Blob", "File", "FormData"], webapi);
  // navigator is an object of a class, so structuredClone sees a platform
  // object rather than plain data.
  class Navigator { get [Symbol.toStringTag]() { return "Navigator"; } }
  def(globalThis, "navigator", Object.freeze(Object.assign(new Navigator(), { userAgent: "agentcloud" })));
  def(globalThis, "scheduler", Object.freeze({
    wait(ms, opts) {
      const sig = opts && opts.signal;
      return new Promise((resolve, reject) => {
        if (sig && sig.aborted) { reject(sig.reason); return; }
        const id = setTimeout(resolve, Math.max(0, Number(ms) || 0));
        if (sig) sig.addEventListener("abort", () => { clearTimeout(id); reject(sig.reason); });
      });
    },
  }));
  lazyGlobals(["CryptoKey", "SubtleCrypto"], webcrypto);
  lazyGlobals(["WebSocketPair", "WebSocket"], websockets);
  lazyGlobals(["ReadableStream", "ReadableStreamDefaultReader", "ReadableStreamBYOBReader", "ReadableStreamDefaultController",
    "ReadableByteStreamController", "ReadableStreamBYOBRequest", "WritableStream", "WritableStreamDefaultWriter",
    "WritableStreamDefaultController", "TransformStream", "TransformStreamDefaultController", "ByteLengthQueuingStrategy",
    "CountQueuingStrategy", "TextEncoderStream", "TextDecoderStream", "CompressionStream", "DecompressionStream"], streams);
  // crypto is the one Crypto (Workers': new Crypto() is an illegal
  // constructor); its methods live on the prototype.
  class Crypto { constructor() { throw new TypeError("Illegal constructor"); } get [Symbol.toStringTag]() { return "Crypto"; } }
  const cryptoMethods = {
    getRandomValues(arr) {
      if (!ArrayBuffer.isView(arr) || arr instanceof Float32Array || arr instanceof Float64Array) {
        throw new TypeError("getRandomValues: expected an integer TypedArray");
      }
      const r = new Uint8Array(host("random", arr.byteLength));
      new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength).set(r);
      return arr;
    },
    randomUUID() {
      const b = new Uint8Array(host("random", 16));
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
    get subtle() { return webcrypto().subtle; },
  };
  for (const k of Object.getOwnPropertyNames(cryptoMethods)) Object.defineProperty(Crypto.prototype, k, Object.getOwnPropertyDescriptor(cryptoMethods, k));
  def(globalThis, "Crypto", Crypto);
  def(globalThis, "crypto", Object.create(Crypto.prototype));
  // self is the global object, as in a worker; an accessor, so platform
  // (below) does not take the global object for a singleton.
  Object.defineProperty(globalThis, "self", { get: () => globalThis, set(v) { def(globalThis, "self", v); }, configurable: true, enumerable: false });
  // reportError logs e as an uncaught exception would be, and returns.
  def(globalThis, "reportError", function reportError(e) {
    if (arguments.length === 0) throw new TypeError("reportError: 1 argument required, but only 0 present");
    console.error("Uncaught", e);
  });

  // Math.random draws from host randomness (crypto/rand), 128 values per
  // host call. QuickJS seeds its own generator once at context creation,
  // which every isolate restored from one template would share; the pool
  // lives in the heap too, so configure() empties it at every activation
  // (New and every Restore): a template or snapshot taken after the pool
  // was filled must not hand the same values to each session restored
  // from it.
  let pool = new Uint32Array(0), poolAt = 0;
  const reseed = () => { pool = new Uint32Array(0); poolAt = 0; };
  def(Math, "random", function random() {
    if (poolAt + 2 > pool.length) { pool = new Uint32Array(host("random", 512)); poolAt = 0; }
    const hi = pool[poolAt++] >>> 5, lo = pool[poolAt++] >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  });

  if (typeof globalThis.queueMicrotask !== "function") {
    def(globalThis, "queueMicrotask", (fn) => { Promise.resolve().then(fn); });
  }
  const sc = /*include jsonclone.js*/(clone, DOMException);
  def(globalThis, "structuredClone", sc.structuredClone);

  // ---- timers: real time, within one call ----
  let timers = new Map(), nextTimerId = 1;
  function addTimer(fn, ms, args, repeat) {
    if (typeof fn !== "function") throw new TypeError("timer callback must be a function");
    const id = nextTimerId++;
    const delay = Math.max(0, Number(ms) || 0);
    timers.set(id, { fn, args, due: Date.now() + delay, delay, repeat, seq: id });
    return id;
  }
  def(globalThis, "setTimeout", (fn, ms, ...args) => addTimer(fn, ms, args, false));
  def(globalThis, "setInterval", (fn, ms, ...args) => addTimer(fn, ms, args, true));
  def(globalThis, "clearTimeout", (id) => { timers.delete(id); });
  def(globalThis, "clearInterval", (id) => { timers.delete(id); });

  // ---- URL and URLSearchParams (url.js) ----
  const { URL, URLSearchParams } = /*include url.js*/(host, enc, dec);
  def(globalThis, "URLSearchParams", URLSearchParams);
  def(globalThis, "URL", URL);
  // urlpattern.js (generated from urlpattern-polyfill): URLPattern.
  let upl = null;
  const urlPatterns = () => upl || (upl = mark(geval(host("lib", "urlpattern.js"))()));
  lazyGlobals(["URLPattern"], urlPatterns);

  // ---- Headers ----
  const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  // Validated, lower-cased header names: the regex test is the costly part
  // of Headers and the same few names recur on every request.
  const nameCache = new Map();
  function hname(n) {
    n = String(n);
    let l = nameCache.get(n);
    if (l !== undefined) return l;
    if (!TOKEN_RE.test(n)) throw new TypeError(`Invalid header name: ${n}`);
    l = n.toLowerCase();
    if (nameCache.size < 256) nameCache.set(n, l);
    return l;
  }
  function normValue(v) {
    v = String(v);
    const n = v.length;
    if (n > 0 && (v.charCodeAt(0) <= 32 || v.charCodeAt(n - 1) <= 32)) v = v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (v.includes("\0") || v.includes("\r") || v.includes("\n")) throw new TypeError("Invalid header value");
    return v;
  }
  class Headers {
    constructor(init) {
      this._m = new Map(); // lower-case name -> [values]
      if (init === undefined || init === null) return;
      if (init instanceof Headers) { for (const [k, v] of init._m) this._m.set(k, v.slice()); return; }
      if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError("Headers: each pair must have two elements");
          this.append(p[0], p[1]);
        }
      } else if (typeof init === "object") {
        for (const k of Object.keys(init)) this.append(k, init[k]);
      } else {
        throw new TypeError("Headers: invalid init");
      }
    }
    _name(n) { return hname(n); }
    append(n, v) { n = this._name(n); const l = this._m.get(n); if (l) l.push(normValue(v)); else this._m.set(n, [normValue(v)]); }
    set(n, v) { this._m.set(this._name(n), [normValue(v)]); }
    get(n) { const l = this._m.get(hname(n)); return l ? (l.length === 1 ? l[0] : l.join(", ")) : null; }
    getSetCookie() { return (this._m.get("set-cookie") || []).slice(); }
    has(n) { return this._m.has(this._name(n)); }
    delete(n) { this._m.delete(this._name(n)); }
    forEach(cb, thisArg) { for (const [k, v] of this.entries()) cb.call(thisArg, v, k, this); }
    *entries() {
      for (const k of Array.from(this._m.keys()).sort()) {
        if (k === "set-cookie") { for (const v of this._m.get(k)) yield [k, v]; } else yield [k, this._m.get(k).join(", ")];
      }
    }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return "Headers"; }
  }
  def(globalThis, "Headers", Headers);

  // ---- Body, Request, Response ----
  // A body is held as a string (_text) or bytes (_bytes, an ArrayBuffer) and
  // converted lazily, so text in and text out never crosses to the host.
  //
  // bodyDefaults are what a Request or Response without a body reads. They
  // live on the prototypes (bodyProto), so a new object sets only what
  // differs: in QuickJS each property added to an object costs about as
  // much as a function call, and a hello-world request builds two objects.
  const TEXT_TYPE = "text/plain;charset=UTF-8";
  const bodyDefaults = { _text: null, _bytes: null, _stream: null, _used: false, _hasBody: false };
  const bodyProto = (proto, more) => {
    for (const [k, v] of Object.entries(Object.assign({}, bodyDefaults, more))) {
      Object.defineProperty(proto, k, { value: v, writable: true, configurable: true, enumerable: false });
    }
  };
  // initBody sets the body of a new Request or Response (one still reading
  // bodyDefaults).
  function initBody(target, body, headers) {
    if (body === undefined || body === null) return;
    target._hasBody = true;
    let type = null;
    if (typeof body === "string") { target._text = body; type = TEXT_TYPE; }
    else if (body instanceof URLSearchParams) { target._text = body.toString(); type = "application/x-www-form-urlencoded;charset=UTF-8"; }
    else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) { target._bytes = toAB(body).slice(0); }
    else if (typeof body.getReader === "function") target._stream = body;
    else if (wal !== null && body instanceof wal.FormData) { const f = wal.encode(body); target._bytes = f.bytes; type = f.type; }
    else if (wal !== null && body instanceof wal.Blob) { target._bytes = body._b.slice(0); type = body.type || null; }
    else if (body && typeof body === "object" && "_text" in body && "_bytes" in body) {
      target._text = body._text; target._bytes = body._bytes;
      if (body._stream) [body._stream, target._stream] = body._stream.tee();
    }
    else { target._text = String(body); type = TEXT_TYPE; }
    if (type && !headers.has("content-type")) headers.set("content-type", type);
  }
  const bodyMixin = {
    get bodyUsed() { return this._used; },
    // body is a ReadableStream (streams.js); a buffered body becomes one on
    // first use, and the readers below then read through it.
    get body() { return !this._hasBody ? null : this._stream || (this._stream = streams().fromBytes(bodyBytes(this))); },
    _consume() {
      if (this._used) return Promise.reject(new TypeError("Body has already been used"));
      this._used = true;
      return null;
    },
    text() { const e = this._consume(); if (e) return e; if (this._stream) return streams().readAll(this._stream).then(dec); return Promise.resolve(bodyText(this)); },
    arrayBuffer() { const e = this._consume(); if (e) return e; if (this._stream) return streams().readAll(this._stream); return Promise.resolve(bodyBytes(this).slice(0)); },
    bytes() { return this.arrayBuffer().then((b) => new Uint8Array(b)); },
    json() { return this.text().then(JSON.parse); },
    formData() { const ct = this.headers.get("content-type"); return this.arrayBuffer().then((b) => webapi().decode(ct, b)); },
    blob() { const ct = this.headers.get("content-type") || ""; return this.arrayBuffer().then((b) => new (webapi().Blob)([b], { type: ct })); },
  };
  function bodyText(b) { if (b._text !== null) return b._text; if (b._bytes !== null) return dec(b._bytes); return ""; }
  function bodyBytes(b) { if (b._bytes !== null) return b._bytes; if (b._text !== null) return (b._bytes = enc(b._text)); return new ArrayBuffer(0); }
  function mixBody(cls) {
    for (const k of Object.getOwnPropertyNames(bodyMixin)) Object.defineProperty(cls.prototype, k, Object.getOwnPropertyDescriptor(bodyMixin, k));
  }

  class AbortSignal {
    constructor() { this.aborted = false; this.reason = undefined; this._l = []; this.onabort = null; }
    addEventListener(t, fn) { if (t === "abort") this._l.push(fn); }
    removeEventListener(t, fn) { this._l = this._l.filter((f) => f !== fn); }
    throwIfAborted() { if (this.aborted) throw this.reason; }
    _abort(reason) {
      if (this.aborted) return;
      this.aborted = true;
      this.reason = reason === undefined ? new Error("The operation was aborted") : reason;
      const ev = { type: "abort", target: this };
      if (this.onabort) this.onabort(ev);
      for (const f of this._l) f(ev);
    }
    static abort(reason) { const s = new AbortSignal(); s._abort(reason); return s; }
    static timeout(ms) { const s = new AbortSignal(); setTimeout(() => s._abort(new DOMException("The operation timed out", "TimeoutError")), ms); return s; }
  }
  class AbortController {
    constructor() { this.signal = new AbortSignal(); }
    abort(reason) { this.signal._abort(reason); }
  }
  def(globalThis, "AbortSignal", AbortSignal);
  def(globalThis, "AbortController", AbortController);

  class Request {
    constructor(input, init = {}) {
      init = init || {};
      let src = null;
      if (input instanceof Request) src = input;
      const url = src ? src.url : new URL(String(input)).href;
      this.url = url;
      this.method = String(init.method || (src ? src.method : "GET")).toUpperCase();
      this._h = new Headers(init.headers !== undefined ? init.headers : src ? src.headers : undefined);
      this.redirect = init.redirect || (src ? src.redirect : "follow");
      this._sig = init.signal || (src ? src.signal : null);
      this.cf = init.cf || (src ? src.cf : undefined);
      let body = init.body !== undefined ? init.body : src ? src : null;
      if ((this.method === "GET" || this.method === "HEAD") && init.body != null) throw new TypeError("Request with GET/HEAD method cannot have body");
      if (body === src && src) { initBody(this, src, this._h); this._hasBody = src._hasBody; }
      else initBody(this, body, this.headers);
    }
    // headers and signal are built on first use: most handlers never touch
    // them, and incoming requests carry their headers as one raw string.
    get headers() { if (this._h === null) this._h = rawHeaders(this._raw, this._rawAt); return this._h; }
    get signal() { if (this._sig === null) this._sig = new AbortSignal(); return this._sig; }
    clone() { if (this._used) throw new TypeError("Body has already been used"); return new Request(this); }
    get [Symbol.toStringTag]() { return "Request"; }
  }
  mixBody(Request);
  bodyProto(Request.prototype, { _h: null, _sig: null, redirect: "follow", cf: undefined });
  def(globalThis, "Request", Request);

  // incoming builds the Request for a call from Go's wire string
  // "method\0url\0(name\0value\0)*" (names lower-case) and body.
  function incoming(meta, body) {
    const i = meta.indexOf("\0"), j = meta.indexOf("\0", i + 1);
    const r = Object.create(Request.prototype);
    r.url = meta.slice(i + 1, j);
    r.method = meta.slice(0, i);
    r._raw = meta; r._rawAt = j + 1; // the rest reads Request.prototype's defaults
    if (body !== undefined && body.byteLength > 0) { r._bytes = body; r._hasBody = true; }
    return r;
  }
  function rawHeaders(meta, at) {
    const h = new Headers();
    if (meta === undefined || at >= meta.length) return h;
    const p = meta.slice(at).split("\0");
    for (let k = 0; k + 1 < p.length; k += 2) {
      const l = h._m.get(p[k]);
      if (l) l.push(p[k + 1]); else h._m.set(p[k], [p[k + 1]]);
    }
    return h;
  }

  const STATUS_TEXT = { 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently", 302: "Found",
    303: "See Other", 304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 422: "Unprocessable Entity",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout" };
  class Response {
    constructor(body = null, init = undefined) {
      if (init === undefined || init === null) {
        // new Response(body): status 200 and no headers but the body's
        // type. Everything else reads Response.prototype's defaults.
        const h = this.headers = new Headers();
        if (typeof body === "string") { this._text = body; this._hasBody = true; h._m.set("content-type", [TEXT_TYPE]); }
        else if (body !== null && body !== undefined) initBody(this, body, h);
        return;
      }
      const status = init.status === undefined ? 200 : Number(init.status);
      if (!((status >= 200 && status <= 599) || (status === 101 && init.webSocket)) || !Number.isInteger(status)) throw new RangeError(`Invalid status ${init.status}`);
      if (status !== 200) this.status = status;
      if (init.statusText !== undefined) this.statusText = String(init.statusText);
      this.headers = new Headers(init.headers);
      if (init.webSocket) this.webSocket = init.webSocket;
      if (body !== null && body !== undefined && (status === 204 || status === 304)) throw new TypeError("Response with null body status cannot have body");
      initBody(this, body, this.headers);
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    clone() { if (this._used) throw new TypeError("Body has already been used"); const r = new Response(null, this); initBody(r, this, r.headers); r.statusText = this.statusText; r.url = this.url; return r; }
    static json(data, init = {}) {
      const s = JSON.stringify(data);
      const r = new Response(null, init);
      if (s === undefined) return r;
      if (r.status === 204 || r.status === 304) throw new TypeError("Response with null body status cannot have body");
      r._text = s; r._hasBody = true;
      if (!r.headers.has("content-type")) r.headers.set("content-type", "application/json");
      return r;
    }
    static redirect(url, status = 302) {
      if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Invalid redirect status ${status}`);
      return new Response(null, { status, headers: { location: new URL(String(url)).href } });
    }
    static error() { const r = new Response(null, { status: 200 }); r.status = 0; r.type = "error"; return r; }
    get [Symbol.toStringTag]() { return "Response"; }
  }
  mixBody(Response);
  bodyProto(Response.prototype, { status: 200, statusText: "", type: "default", url: "", redirected: false, webSocket: null });
  def(globalThis, "Response", Response);

  const headerPairs = (h) => Array.from(h.entries());

  async function fetch(input, init) {
    const req = new Request(input, init);
    if (req.signal && req.signal.aborted) throw req.signal.reason;
    const meta = JSON.stringify({ method: req.method, url: req.url, headers: headerPairs(req.headers) });
    const out = req._hasBody ? host("fetch", meta, req._stream ? await streams().readAll(req._stream) : bodyBytes(req)) : host("fetch", meta);
    const m = JSON.parse(out[0]);
    const r = new Response(null, { status: m.status >= 200 && m.status <= 599 ? m.status : 200, statusText: m.statusText || STATUS_TEXT[m.status] || "", headers: m.headers || [] });
    r.status = m.status;
    r._bytes = out[1]; r._hasBody = true;
    r.url = req.url;
    return r;
  }
  def(globalThis, "fetch", fetch);

  // cache.js: caches, Cache and CacheStorage.
  let cal = null;
  const cacheLib = () => cal || (cal = mark(geval(host("lib", "cache.js"))(host, Request, Response, toAB)));
  lazyGlobals(["caches", "Cache", "CacheStorage"], cacheLib);

  // ---- env and the driver ----
  const json = (v) => { const s = JSON.stringify(v); if (s === undefined) throw new TypeError("value is not JSON-serializable"); return s; };
  // env.state values are structured-clone values (jsonclone.js encodeState):
  // plain JSON is stored as its JSON text, anything else in an envelope.
  const stateEnc = sc.encodeState, stateDec = (s) => sc.decodeState(JSON.parse(s));
  const state = {
    async get(key) {
      if (Array.isArray(key)) { const m = new Map(); for (const k of key) { const v = await state.get(k); if (v !== undefined) m.set(k, v); } return m; }
      const s = host("state.get", String(key));
      return s === undefined ? undefined : stateDec(s);
    },
    async put(key, value) {
      if (key !== null && typeof key === "object") {
        const vals = Object.keys(key).map((k) => [k, stateEnc(key[k])]);
        for (const [k, v] of vals) host("state.put", k, v);
        return;
      }
      host("state.put", String(key), stateEnc(value));
    },
    async delete(key) {
      if (Array.isArray(key)) { let n = 0; for (const k of key) { host("state.delete", String(k)); n++; } return n; }
      host("state.delete", String(key));
      return true;
    },
    async list(opts = {}) {
      opts = opts || {};
      const rows = JSON.parse(host("state.list", String(opts.prefix || ""), Number(opts.limit || 0)));
      const m = new Map();
      for (const [k, v] of rows) m.set(k, sc.decodeState(v));
      return m;
    },
    async setAlarm(when) {
      const ms = when instanceof Date ? when.getTime() : Number(when);
      host("alarm.set", ms);
    },
    async getAlarm() { const ms = host("alarm.get"); return ms === undefined ? null : ms; },
    async deleteAlarm() { host("alarm.delete"); },
  };
  state.storage = state;

  // Platform services: each method is one "invoke" host call with JSON in
  // and out (see Host.Invoke).
  const invoke = (svc, method, args) => {
    const s = host("invoke", svc, method, args === undefined ? "null" : json(args));
    return s === undefined ? undefined : JSON.parse(s);
  };
  const tools = {
    async call(name, args) { return invoke("tools", "call", { name: String(name), arguments: args === undefined ? {} : args }); },
    async search(words, opts) { return invoke("tools", "search", Object.assign({ query: String(words) }, opts || {})); },
    async list() { return invoke("tools", "list", {}); },
  };
  const ai = {
    async chat(req) { return invoke("ai", "chat", req); },
    async embed(req) { return invoke("ai", "embed", req); },
    async run(model, inputs) { return invoke("ai", "chat", Object.assign({ model: String(model) }, inputs || {})); },
  };
  const sandbox = {
    async run(req) { return invoke("sandbox", "run", req); },
    async exec(id, req) { return invoke("sandbox", "exec", Object.assign({}, req || {}, { id: String(id) })); },
    async delete(id) { return invoke("sandbox", "delete", { id: String(id) }); },
  };
  const env = { state, session: { id: "", agent: "" }, tools, ai, sandbox };
  let handler = null;
  let waitUntil = [];
  const execCtx = {
    waitUntil(p) { waitUntil.push(Promise.resolve(p).catch((e) => console.error("waitUntil:", e))); },
    passThroughOnException() {},
    acceptWebSocket(ws, tags) { websockets().acceptWebSocket(ws, tags); },
    getWebSockets(tag) { return websockets().getWebSockets(tag); },
    getTags(ws) { return websockets().getTags(ws); },
  };
  for (const k of ["acceptWebSocket", "getWebSockets", "getTags"]) state[k] = execCtx[k];

  function errorInfo(e) {
    if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack || "" };
    return { name: "Error", message: fmt(e, 1), stack: "" };
  }
  async function finish(p) {
    const r = await p;
    while (waitUntil.length) { const w = waitUntil; waitUntil = []; await Promise.all(w); }
    return r;
  }
  // respond turns the handler's result into what Go reads: the string
  // "status\0statusText\0n\0(name\0value\0)*n" followed by a text body, or
  // [that string, ArrayBuffer] for a binary body, or [that string, null,
  // step] for a stream Go then pulls with step (stream.go). It ends the
  // call, timers included, unless the body is a stream still being made.
  //
  // With waitUntil work pending it returns a promise of the handler's result
  // instead; Go settles it and calls respond again (fetch with meta "\x02").
  function respond(res) {
    if (waitUntil.length) return finish(res);
    if (!(res instanceof Response)) {
      throw new TypeError(`fetch handler returned ${res === undefined ? "undefined" : Object.prototype.toString.call(res)}, not a Response`);
    }
    let st = res.statusText;
    if (!st) st = STATUS_TEXT[res.status] || "";
    else if (typeof st !== "string" || st.includes("\0")) st = String(st).replace(/\0/g, "");
    // A lone content-type (new Response(text)) is read without iterating
    // the map: a for-of over a Map costs more than the rest of respond.
    const m = res.headers._m;
    let hs, n, ct;
    if (m.size === 1 && (ct = m.get("content-type")) !== undefined && ct.length === 1) { hs = "content-type\0" + ct[0] + "\0"; n = 1; }
    else {
      hs = ""; n = 0;
      for (const [k, l] of m) {
        if (k === "set-cookie" && l.length > 1) { for (const v of l) { hs += k + "\0" + v + "\0"; n++; } }
        else { hs += k + "\0" + (l.length === 1 ? l[0] : l.join(", ")) + "\0"; n++; }
      }
    }
    if (res.webSocket) { hs += ":websocket\0" + websockets().peerOf(res.webSocket) + "\0"; n++; }
    const meta = res.status + "\0" + st + "\0" + n + "\0" + hs;
    if (res._stream !== null) return [meta, null, streams().stepper(res._stream)]; // Go pulls it (stream.go)
    if (timers.size !== 0) timers.clear();
    if (!res._hasBody) return meta;
    if (res._text !== null) return meta + res._text;
    return [meta, res._bytes];
  }

  for (const k of Reflect.ownKeys(globalThis)) {
    const d = Object.getOwnPropertyDescriptor(globalThis, k);
    if (!engineGlobals.has(k) && "value" in d) addPlatform(d.value); // lazy globals: mark
  }

  return {
    configure(cfg) {
      reseed();
      const p = cfg.split("\0");
      env.session.id = p[0];
      env.session.agent = p[1];
      for (let k = 2; k + 1 < p.length; k += 2) env[p[k]] = p[k + 1];
    },
    setModule(ns) {
      handler = ns && ns.default;
      // Libraries the agent's source names are compiled now, into the
      // template its sessions share, rather than into each session's heap
      // (and snapshot) at first use.
      for (const name of host("preload")) ({ "webcrypto.js": webcrypto, "clone.js": clone, "streams.js": streams, "websocket.js": websockets, "webapi.js": webapi,
        "identitystream.js": identityStreams, "cache.js": cacheLib, "urlpattern.js": urlPatterns })[name]();
    },
    // fetch returns respond's result or, when the handler is asynchronous,
    // the handler's promise itself: Go settles it (no reaction job, no
    // second promise) and passes the result back with meta "\x02", which
    // responds to it (isolate.go Fetch).
    fetch(meta, body) {
      const c = meta.charCodeAt(0);
      if (c === 2) return respond(body);
      if (c === 1) return finish(websockets().event(meta, body, handler)); // socket.go
      if (!handler || typeof handler.fetch !== "function") throw new Error("__no_fetch_handler");
      const res = handler.fetch(incoming(meta, body), env, execCtx);
      if (res !== null && typeof res === "object" && typeof res.then === "function") return res instanceof Promise ? res : Promise.resolve(res);
      return respond(res);
    },
    alarm() {
      return finish((async () => {
        if (!handler || typeof handler.alarm !== "function") throw new Error("__no_alarm_handler");
        await handler.alarm(env, execCtx);
      })());
    },
    // nextTimer returns the due time (ms since the epoch) of the earliest
    // timer, or -1 when none is pending.
    //
    // Called with an argument it returns -2 instead: Go's probe for a driver
    // whose fetch returns the handler's promise (heaps restored from images
    // made before return the response's; see Isolate.settlesHandler).
    nextTimer() {
      if (arguments.length > 0) return -2;
      let min = -1;
      for (const t of timers.values()) if (min < 0 || t.due < min) min = t.due;
      return min;
    },
    // runTimers fires every timer that is due, in due order.
    runTimers() {
      const now = Date.now();
      const due = Array.from(timers.entries()).filter(([, t]) => t.due <= now).sort((a, b) => a[1].due - b[1].due || a[1].seq - b[1].seq);
      for (const [id, t] of due) {
        if (!timers.has(id)) continue;
        if (t.repeat) t.due = Date.now() + Math.max(1, t.delay); else timers.delete(id);
        try { t.fn(...t.args); } catch (e) { console.error("Uncaught (in timer)", e); }
      }
    },
    // endCall drops what must not outlive a call: pending timers and
    // waitUntil promises nobody awaited.
    endCall() {
      timers.clear();
      waitUntil = [];
    },
    errorInfo,
  };
})(globalThis.__ac_host);
