// url.js: URL and URLSearchParams for the prelude, which includes it (the
// comment "/*include url.js*/" in prelude.js). URL parses, sets and
// serializes through the host's WHATWG parser (url.go: "url.parse",
// "url.set") and keeps only the parts it answers; URLSearchParams is the
// standard's application/x-www-form-urlencoded list. enc and dec are the
// host's UTF-8 encoder and decoder.
(function (host, enc, dec) {
  "use strict";
  const usv = (v) => String(v).toWellFormed();
  // ---- URLSearchParams ----
  const formEncode = (s) =>
    encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  // formDecode: + is a space, then percent-decoding to bytes read as UTF-8
  // (a % not followed by two hex digits stays, bad UTF-8 becomes U+FFFD).
  const formDecode = (s) => {
    if (s.indexOf("+") >= 0) s = s.replace(/\+/g, " ");
    if (s.indexOf("%") < 0) return s;
    try { return decodeURIComponent(s); } catch (_) {
      const b = new Uint8Array(enc(s)), out = new Uint8Array(b.length);
      const hex = (c) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
      let n = 0;
      for (let i = 0; i < b.length; i++) {
        if (b[i] === 37 && i + 2 < b.length && hex(b[i + 1]) && hex(b[i + 2])) {
          out[n++] = parseInt(String.fromCharCode(b[i + 1], b[i + 2]), 16);
          i += 2;
        } else out[n++] = b[i];
      }
      return dec(out.buffer.slice(0, n));
    }
  };
  const serialize = (list) => list.map(([k, v]) => formEncode(k) + "=" + formEncode(v)).join("&");
  class URLSearchParams {
    constructor(init) {
      this._list = [];
      this._url = null;
      if (init === undefined || init === null) return;
      if (typeof init === "object" && typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError("URLSearchParams: each pair must have two elements");
          this._list.push([usv(p[0]), usv(p[1])]);
        }
      } else if (typeof init === "object") {
        for (const k of Object.keys(init)) this._list.push([usv(k), usv(init[k])]);
      } else {
        this._parse(usv(init));
      }
    }
    _parse(s) {
      this._list = [];
      if (s.startsWith("?")) s = s.slice(1);
      for (const part of s.split("&")) {
        if (part === "") continue;
        const i = part.indexOf("=");
        this._list.push(i < 0 ? [formDecode(part), ""] : [formDecode(part.slice(0, i)), formDecode(part.slice(i + 1))]);
      }
    }
    // _commit makes list the pairs, after writing it back to the URL they
    // belong to: when the host refuses that URL (its limits), the pairs
    // and the URL stay as they were, and the error is thrown.
    _commit(list) { if (this._url) this._url._setQuery(serialize(list)); this._list = list; }
    get size() { return this._list.length; }
    append(k, v) { this._commit(this._list.concat([[usv(k), usv(v)]])); }
    delete(k, v) {
      k = usv(k);
      if (v !== undefined) v = usv(v);
      this._commit(this._list.filter(([a, b]) => !(a === k && (v === undefined || b === v))));
    }
    get(k) { k = usv(k); const e = this._list.find(([a]) => a === k); return e ? e[1] : null; }
    getAll(k) { k = usv(k); return this._list.filter(([a]) => a === k).map(([, b]) => b); }
    has(k, v) { k = usv(k); return this._list.some(([a, b]) => a === k && (v === undefined || b === usv(v))); }
    set(k, v) {
      k = usv(k); v = usv(v);
      const i = this._list.findIndex(([a]) => a === k);
      this._commit(i < 0 ? this._list.concat([[k, v]]) : this._list.filter(([a], j) => a !== k || j === i).map((e) => (e[0] === k ? [k, v] : e)));
    }
    sort() {
      this._commit(this._list.map((e, i) => [e, i]).sort((x, y) => (x[0][0] < y[0][0] ? -1 : x[0][0] > y[0][0] ? 1 : x[1] - y[1])).map(([e]) => e));
    }
    forEach(cb, thisArg) { for (const [k, v] of this._list) cb.call(thisArg, v, k, this); }
    *entries() { for (const [k, v] of this._list) yield [k, v]; }
    *keys() { for (const [k] of this._list) yield k; }
    *values() { for (const [, v] of this._list) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return serialize(this._list); }
    get [Symbol.toStringTag]() { return "URLSearchParams"; }
  }

  // ---- URL ----
  // _p holds the host's answer, split: href, origin, protocol, username,
  // password, hostname, port, pathname, search, hash. The host refuses a
  // string over 2 MiB of UTF-8, a head (what precedes the query) over
  // 64 KiB and credentials over 8 KiB (url.go maxURLBytes,
  // maxURLHeadBytes, maxURLCredsBytes); a string whose UTF-16 length is
  // over the first is refused here, before it is copied.
  const MAX = 2 << 20;
  const arg = (v) => {
    const s = String(v);
    if (s.length > MAX) throw new TypeError(`Invalid URL: ${s.length} characters, more than the ${MAX} bytes the runtime parses`);
    return s;
  };
  const parse = (url, base) => host("url.parse", arg(url), base === undefined ? undefined : arg(base)).split("\n");
  class URL {
    constructor(url, base) { this._p = parse(url, base); this._sp = null; }
    static canParse(url, base) {
      try { parse(url, base); return true; } catch (e) { if (e instanceof TypeError) return false; throw e; }
    }
    static parse(url, base) {
      try { return new URL(url, base); } catch (e) { if (e instanceof TypeError) return null; throw e; }
    }
    _set(name, v) { this._p = host("url.set", this._p[0], name, arg(v)).split("\n"); }
    _setQuery(q) { this._set("search", q); }
    get href() { return this._p[0]; }
    set href(v) { this._set("href", v); if (this._sp) this._sp._parse(this._p[8]); }
    get origin() { return this._p[1]; }
    get protocol() { return this._p[2]; }
    set protocol(v) { this._set("protocol", v); }
    get username() { return this._p[3]; }
    set username(v) { this._set("username", v); }
    get password() { return this._p[4]; }
    set password(v) { this._set("password", v); }
    get host() { return this._p[6] === "" ? this._p[5] : this._p[5] + ":" + this._p[6]; }
    set host(v) { this._set("host", v); }
    get hostname() { return this._p[5]; }
    set hostname(v) { this._set("hostname", v); }
    get port() { return this._p[6]; }
    set port(v) { this._set("port", v); }
    get pathname() { return this._p[7]; }
    set pathname(v) { this._set("pathname", v); }
    get search() { return this._p[8]; }
    set search(v) { this._set("search", v); if (this._sp) this._sp._parse(this._p[8]); }
    get searchParams() {
      if (!this._sp) { this._sp = new URLSearchParams(this._p[8]); this._sp._url = this; }
      return this._sp;
    }
    get hash() { return this._p[9]; }
    set hash(v) { this._set("hash", v); }
    toString() { return this._p[0]; }
    toJSON() { return this._p[0]; }
    get [Symbol.toStringTag]() { return "URL"; }
  }
  return { URL, URLSearchParams };
})
