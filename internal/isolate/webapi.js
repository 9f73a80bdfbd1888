// webapi.js: Event, EventTarget, CustomEvent, MessageEvent, CloseEvent,
// ErrorEvent, PromiseRejectionEvent, Blob, File and FormData, and
// the multipart/form-data body of a FormData. Compiled on first use (host
// op "lib") or at boot when the agent's source names them, as the other
// libraries. Multipart bodies are parsed in Go (host op "multipart.parse",
// mime/multipart); building one is plain concatenation, done here.
(host, toAB, enc, dec, DOMException) => {
  const priv = new WeakMap();
  class Event {
    constructor(type, init = {}) {
      if (arguments.length === 0) throw new TypeError("Event: type is required");
      init = init || {};
      this.type = String(type);
      this.bubbles = !!init.bubbles; this.cancelable = !!init.cancelable; this.composed = !!init.composed;
      this.defaultPrevented = false; this.target = null; this.currentTarget = null;
      this.timeStamp = Date.now(); this.isTrusted = false; this.eventPhase = 0;
      priv.set(this, { stop: false });
    }
    preventDefault() { if (this.cancelable) this.defaultPrevented = true; }
    stopPropagation() {}
    stopImmediatePropagation() { priv.get(this).stop = true; }
    get [Symbol.toStringTag]() { return "Event"; }
  }
  class CustomEvent extends Event {
    constructor(type, init = {}) { super(type, init); this.detail = init && init.detail !== undefined ? init.detail : null; }
    get [Symbol.toStringTag]() { return "CustomEvent"; }
  }
  // The events of messages, closes and errors (WebSocket's among them) and
  // of unhandled rejections, each with its init dictionary's members.
  const need = (args, name) => { if (args.length === 0) throw new TypeError(`${name}: type is required`); };
  const opt = (init, k, d) => (init && init[k] !== undefined ? init[k] : d);
  class MessageEvent extends Event {
    constructor(type, init = {}) {
      need(arguments, "MessageEvent"); super(type, init);
      const ports = opt(init, "ports", []);
      if (ports === null || typeof ports !== "object" || typeof ports[Symbol.iterator] !== "function") throw new TypeError("MessageEvent: ports must be a sequence");
      this.data = opt(init, "data", null); this.origin = String(opt(init, "origin", ""));
      this.lastEventId = String(opt(init, "lastEventId", "")); this.source = opt(init, "source", null);
      this.ports = Object.freeze(Array.from(ports));
    }
    get [Symbol.toStringTag]() { return "MessageEvent"; }
  }
  class CloseEvent extends Event {
    constructor(type, init = {}) {
      need(arguments, "CloseEvent"); super(type, init);
      this.code = Number(opt(init, "code", 0)) & 0xffff; this.reason = String(opt(init, "reason", "")); this.wasClean = !!opt(init, "wasClean", false);
    }
    get [Symbol.toStringTag]() { return "CloseEvent"; }
  }
  class ErrorEvent extends Event {
    constructor(type, init = {}) {
      need(arguments, "ErrorEvent"); super(type, init);
      this.message = String(opt(init, "message", "")); this.filename = String(opt(init, "filename", ""));
      this.lineno = Number(opt(init, "lineno", 0)) >>> 0; this.colno = Number(opt(init, "colno", 0)) >>> 0;
      this.error = opt(init, "error", null);
    }
    get [Symbol.toStringTag]() { return "ErrorEvent"; }
  }
  class PromiseRejectionEvent extends Event {
    constructor(type, init) {
      need(arguments, "PromiseRejectionEvent");
      if (init === null || typeof init !== "object" || !("promise" in init)) throw new TypeError("PromiseRejectionEvent: init.promise is required");
      super(type, init);
      this.promise = init.promise; this.reason = init.reason;
    }
    get [Symbol.toStringTag]() { return "PromiseRejectionEvent"; }
  }
  const listeners = new WeakMap();
  class EventTarget {
    constructor() { listeners.set(this, new Map()); }
    addEventListener(type, fn, opts) {
      if (fn == null) return;
      const once = typeof opts === "object" && opts !== null && !!opts.once;
      const signal = typeof opts === "object" && opts !== null ? opts.signal : undefined;
      if (signal && signal.aborted) return;
      const m = listeners.get(this) || (listeners.set(this, new Map()), listeners.get(this));
      const l = m.get(type) || [];
      if (l.some((e) => e.fn === fn)) return;
      l.push({ fn, once }); m.set(type, l);
      if (signal) signal.addEventListener("abort", () => this.removeEventListener(type, fn));
    }
    removeEventListener(type, fn) {
      const m = listeners.get(this); const l = m && m.get(type);
      if (l) m.set(type, l.filter((e) => e.fn !== fn));
    }
    dispatchEvent(ev) {
      if (!(ev instanceof Event)) throw new TypeError("dispatchEvent: argument is not an Event");
      ev.target = this; ev.currentTarget = this; ev.eventPhase = 2;
      const m = listeners.get(this); const l = (m && m.get(ev.type)) || [];
      for (const e of l.slice()) {
        if (e.once) this.removeEventListener(ev.type, e.fn);
        if (typeof e.fn === "function") e.fn.call(this, ev); else if (typeof e.fn.handleEvent === "function") e.fn.handleEvent(ev);
        if (priv.get(ev).stop) break;
      }
      const on = this["on" + ev.type];
      if (typeof on === "function" && !priv.get(ev).stop) on.call(this, ev);
      ev.currentTarget = null; ev.eventPhase = 0;
      return !ev.defaultPrevented;
    }
  }

  const bytesOf = (part) => {
    if (part instanceof Blob) return new Uint8Array(part._b);
    if (part instanceof ArrayBuffer || ArrayBuffer.isView(part)) return new Uint8Array(toAB(part).slice(0));
    return new Uint8Array(enc(String(part)));
  };
  const concat = (arrs) => {
    let n = 0; for (const a of arrs) n += a.byteLength;
    const out = new Uint8Array(n); let at = 0;
    for (const a of arrs) { out.set(a, at); at += a.byteLength; }
    return out.buffer;
  };
  class Blob {
    constructor(parts = [], opts = {}) {
      if (parts === null || typeof parts !== "object" || typeof parts[Symbol.iterator] !== "function") throw new TypeError("Blob: parts must be a sequence");
      this._b = concat(Array.from(parts, bytesOf));
      const t = opts && opts.type !== undefined ? String(opts.type) : "";
      this._t = /^[\x20-\x7e]*$/.test(t) ? t.toLowerCase() : "";
    }
    get size() { return this._b.byteLength; }
    get type() { return this._t; }
    arrayBuffer() { return Promise.resolve(this._b.slice(0)); }
    bytes() { return Promise.resolve(new Uint8Array(this._b.slice(0))); }
    text() { return Promise.resolve(dec(this._b)); }
    slice(start = 0, end = this.size, type = "") {
      const n = this.size;
      const rel = (x) => (x < 0 ? Math.max(n + x, 0) : Math.min(x, n));
      const b = new Blob([], { type });
      b._b = this._b.slice(rel(start), Math.max(rel(end), rel(start)));
      return b;
    }
    stream() { return new Response(this._b).body; }
    get [Symbol.toStringTag]() { return "Blob"; }
  }
  class File extends Blob {
    constructor(parts, name, opts = {}) {
      if (arguments.length < 2) throw new TypeError("File: parts and name are required");
      super(parts, opts);
      this._n = String(name);
      this._m = opts && opts.lastModified !== undefined ? Number(opts.lastModified) : Date.now();
    }
    get name() { return this._n; }
    get lastModified() { return this._m; }
    get [Symbol.toStringTag]() { return "File"; }
  }

  const entry = (name, value, filename) => {
    name = String(name);
    if (value instanceof Blob) {
      if (!(value instanceof File) || filename !== undefined) {
        value = new File([value], filename !== undefined ? String(filename) : value instanceof File ? value.name : "blob",
          { type: value.type, lastModified: value instanceof File ? value.lastModified : undefined });
      }
      return [name, value];
    }
    return [name, String(value)];
  };
  class FormData {
    constructor(form) {
      if (form !== undefined) throw new TypeError("FormData: a form element is not supported here");
      this._e = [];
    }
    append(name, value, filename) { this._e.push(entry(name, value, filename)); }
    set(name, value, filename) {
      const e = entry(name, value, filename); name = e[0];
      const i = this._e.findIndex((x) => x[0] === name);
      if (i < 0) { this._e.push(e); return; }
      this._e = this._e.filter((x, j) => j <= i || x[0] !== name); this._e[i] = e;
    }
    get(name) { const e = this._e.find((x) => x[0] === String(name)); return e ? e[1] : null; }
    getAll(name) { return this._e.filter((x) => x[0] === String(name)).map((x) => x[1]); }
    has(name) { return this._e.some((x) => x[0] === String(name)); }
    delete(name) { this._e = this._e.filter((x) => x[0] !== String(name)); }
    *entries() { for (const e of this._e.slice()) yield [e[0], e[1]]; }
    *keys() { for (const e of this._e.slice()) yield e[0]; }
    *values() { for (const e of this._e.slice()) yield e[1]; }
    forEach(fn, self) { for (const [k, v] of this.entries()) fn.call(self, v, k, this); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return "FormData"; }
  }

  // encode builds the multipart/form-data body of fd: {bytes, type}.
  const esc = (s) => s.replace(/\r\n|\r|\n/g, "\r\n").replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/"/g, "%22");
  function encode(fd) {
    const rnd = new Uint8Array(host("random", 12));
    const boundary = "----agentcloudFormBoundary" + Array.from(rnd, (x) => x.toString(16).padStart(2, "0")).join("");
    const out = [];
    for (const [name, value] of fd._e) {
      if (typeof value === "string") {
        out.push(new Uint8Array(enc(`--${boundary}\r\nContent-Disposition: form-data; name="${esc(name)}"\r\n\r\n`)));
        out.push(new Uint8Array(enc(value.replace(/\r\n|\r|\n/g, "\r\n"))));
      } else {
        out.push(new Uint8Array(enc(`--${boundary}\r\nContent-Disposition: form-data; name="${esc(name)}"; filename="${esc(value.name)}"\r\n` +
          `Content-Type: ${value.type || "application/octet-stream"}\r\n\r\n`)));
        out.push(new Uint8Array(value._b));
      }
      out.push(new Uint8Array(enc("\r\n")));
    }
    out.push(new Uint8Array(enc(`--${boundary}--\r\n`)));
    return { bytes: concat(out), type: "multipart/form-data; boundary=" + boundary };
  }

  // decode parses a body of content type ct into a FormData.
  function decode(ct, bytes) {
    const parsed = JSON.parse(host("multipart.parse", ct || "", bytes));
    const fd = new FormData();
    if (parsed === "urlencoded") {
      for (const [k, v] of new URLSearchParams(dec(bytes))) fd.append(k, v);
      return fd;
    }
    for (const p of parsed) {
      if (p.file) fd.append(p.name, new File([host("base64.decode", p.data || "")], p.filename, { type: p.type }));
      else fd.append(p.name, p.value || "");
    }
    return fd;
  }

  return { Event, CustomEvent, MessageEvent, CloseEvent, ErrorEvent, PromiseRejectionEvent, EventTarget, Blob, File, FormData, encode, decode };
}
