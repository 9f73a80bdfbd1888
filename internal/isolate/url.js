// url.js: URL and URLSearchParams for the prelude, which includes it (the
// comment "/*include url.js*/" in prelude.js). A WHATWG-style parser for
// hierarchical and opaque URLs; enc is the host's UTF-8 encoder.
(function (enc) {
  "use strict";
  // ---- URLSearchParams ----
  const formEncode = (s) =>
    encodeURIComponent(s).replace(/%20/g, "+").replace(/[!'()~]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  const formDecode = (s) => {
    if (s.indexOf("+") < 0 && s.indexOf("%") < 0) return s;
    s = s.replace(/\+/g, " ");
    try { return decodeURIComponent(s); } catch (_) {
      return s.replace(/%([0-9a-fA-F]{2})/g, (m, h) => String.fromCharCode(parseInt(h, 16)));
    }
  };
  class URLSearchParams {
    constructor(init) {
      this._list = [];
      this._url = null;
      if (init === undefined || init === null) return;
      if (typeof init === "object" && typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const p = Array.from(pair);
          if (p.length !== 2) throw new TypeError("URLSearchParams: each pair must have two elements");
          this._list.push([String(p[0]), String(p[1])]);
        }
      } else if (typeof init === "object") {
        for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
      } else {
        this._parse(String(init));
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
    _update() {
      if (this._url) { const q = this.toString(); this._url._query = q === "" ? null : q; }
    }
    get size() { return this._list.length; }
    append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
    delete(k, v) {
      k = String(k);
      this._list = this._list.filter(([a, b]) => !(a === k && (v === undefined || b === String(v))));
      this._update();
    }
    get(k) { k = String(k); const e = this._list.find(([a]) => a === k); return e ? e[1] : null; }
    getAll(k) { k = String(k); return this._list.filter(([a]) => a === k).map(([, b]) => b); }
    has(k, v) { k = String(k); return this._list.some(([a, b]) => a === k && (v === undefined || b === String(v))); }
    set(k, v) {
      k = String(k); v = String(v);
      const i = this._list.findIndex(([a]) => a === k);
      if (i < 0) this._list.push([k, v]);
      else { this._list[i][1] = v; this._list = this._list.filter(([a], j) => a !== k || j === i); }
      this._update();
    }
    sort() {
      this._list = this._list.map((e, i) => [e, i]).sort((x, y) => (x[0][0] < y[0][0] ? -1 : x[0][0] > y[0][0] ? 1 : x[1] - y[1])).map(([e]) => e);
      this._update();
    }
    forEach(cb, thisArg) { for (const [k, v] of this._list) cb.call(thisArg, v, k, this); }
    *entries() { for (const [k, v] of this._list) yield [k, v]; }
    *keys() { for (const [k] of this._list) yield k; }
    *values() { for (const [, v] of this._list) yield v; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this._list.map(([k, v]) => formEncode(k) + "=" + formEncode(v)).join("&"); }
    get [Symbol.toStringTag]() { return "URLSearchParams"; }
  }

  // ---- URL (WHATWG-style parser for hierarchical and opaque URLs) ----
  const special = { "http:": "80", "https:": "443", "ws:": "80", "wss:": "443", "ftp:": "21", "file:": "" };
  const pctEncode = (s, re) => s.replace(re, (c) => Array.from(new Uint8Array(enc(c)), (b) => "%" + b.toString(16).toUpperCase().padStart(2, "0")).join(""));
  const PATH_RE = /[\u0000-\u0020"#<>?`{}\u{7f}-\u{10ffff}]/gu;
  const QUERY_RE = /[\u0000-\u0020"#<>'\u{7f}-\u{10ffff}]/gu;
  const FRAG_RE = /[\u0000-\u0020"<>`\u{7f}-\u{10ffff}]/gu;
  const USER_RE = /[\u0000-\u0020"#<>?`{}\/:;=@\[\\\]^|\u{7f}-\u{10ffff}]/gu;
  function normPath(segs) {
    const out = [];
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i], last = i === segs.length - 1;
      if (s === "." || s.toLowerCase() === "%2e") { if (last) out.push(""); continue; }
      if (s === ".." || /^(\.|%2e)(\.|%2e)$/i.test(s)) { if (out.length) out.pop(); if (last) out.push(""); continue; }
      out.push(s);
    }
    return "/" + out.join("/");
  }
  // Absolute http(s)/ws(s) URLs with a lower-case host and nothing to
  // normalize or encode (the usual request URL) take one regex match
  // instead of the general parser's dozen passes; anything else falls
  // through to it.
  const SIMPLE_URL_RE = /^(https?|wss?):\/\/([a-z0-9][a-z0-9.\-]*)(?::([0-9]{1,5}))?((?:\/[A-Za-z0-9\-._~!$&()*+,;=:@]*)*)(?:\?([A-Za-z0-9\-._~!$&()*+,;=:@\/?%]*))?$/;
  const NUMERIC_END_RE = /(^|\.)(\d+|0x[0-9a-f]*)\.?$/;
  const CANON_V4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
  function parseSimpleURL(s) {
    const f = SIMPLE_URL_RE.exec(s);
    if (f === null || f[4].includes("/.")) return null;
    // A host ending in a number is an IPv4 address: only the canonical
    // dotted form stays on this path (0x7f.1, 127.1 go to ipv4()).
    if (NUMERIC_END_RE.test(f[2]) && !CANON_V4_RE.test(f[2])) return null;
    const protocol = f[1] + ":";
    let port = f[3] === undefined ? "" : String(Number(f[3]));
    if (Number(port) > 65535) return null;
    if (special[protocol] === port) port = "";
    return { protocol, username: "", password: "", hostname: f[2], port, pathname: f[4] || "/",
      _query: f[5] === undefined ? null : f[5], _fragment: null, _opaque: false };
  }
  function parseURL(input, base) {
    if (base === undefined && typeof input === "string") {
      const u = parseSimpleURL(input);
      if (u !== null) return u;
    }
    let s = String(input).replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "").replace(/[\t\n\r]/g, "");
    const u = { protocol: "", username: "", password: "", hostname: "", port: "", pathname: "", _query: null, _fragment: null, _opaque: false };
    let hi = s.indexOf("#");
    if (hi >= 0) { u._fragment = s.slice(hi + 1); s = s.slice(0, hi); }
    const m = /^([a-zA-Z][a-zA-Z0-9+.\-]*):/.exec(s);
    let rest;
    if (m) {
      u.protocol = m[1].toLowerCase() + ":";
      rest = s.slice(m[0].length);
      if (base && u.protocol === base.protocol && u.protocol in special && !rest.startsWith("/")) {
        return resolveRelative(rest, base, u);
      }
    } else {
      if (!base) throw new TypeError(`Invalid URL: ${input}`);
      return resolveRelative(s, base, u);
    }
    const isSpecial = u.protocol in special;
    if (isSpecial) rest = rest.replace(/\\/g, "/");
    if (rest.startsWith("//") || (isSpecial && u.protocol !== "file:")) {
      // file: takes exactly the two slashes (file:///etc/passwd has an
      // empty host); other special schemes skip any number.
      rest = u.protocol === "file:" ? rest.slice(2) : rest.replace(/^\/*/, "");
      parseAuthority(u, rest, isSpecial);
      if (u.protocol === "file:" && u.hostname === "localhost") u.hostname = "";
    } else {
      parsePathQuery(u, rest, false);
    }
    return u;
  }
  function parsePathQuery(u, rest, isSpecial) {
    const qi = rest.indexOf("?");
    if (qi >= 0) { u._query = rest.slice(qi + 1); rest = rest.slice(0, qi); }
    if (!isSpecial && !rest.startsWith("/") && u.hostname === "") { u._opaque = true; u.pathname = rest; return; }
    u.pathname = rest === "" ? (isSpecial ? "/" : "") : normPath(rest.split("/").slice(1));
  }
  function parseAuthority(u, rest, isSpecial) {
    let end = rest.search(/[\/?]/);
    if (end < 0) end = rest.length;
    let auth = rest.slice(0, end);
    rest = rest.slice(end);
    const at = auth.lastIndexOf("@");
    if (at >= 0) {
      const cred = auth.slice(0, at);
      auth = auth.slice(at + 1);
      const ci = cred.indexOf(":");
      u.username = pctEncode(ci < 0 ? cred : cred.slice(0, ci), USER_RE);
      u.password = ci < 0 ? "" : pctEncode(cred.slice(ci + 1), USER_RE);
    }
    if (auth.startsWith("[")) {
      const close = auth.indexOf("]");
      if (close < 0) throw new TypeError("Invalid URL: bad IPv6 host");
      const after = auth.slice(close + 1);
      if (after.startsWith(":")) u.port = after.slice(1); else if (after !== "") throw new TypeError("Invalid URL: bad host");
      auth = auth.slice(0, close + 1);
    } else {
      const ci = auth.lastIndexOf(":");
      if (ci >= 0) { u.port = auth.slice(ci + 1); auth = auth.slice(0, ci); }
    }
    if (u.port !== "" && !/^\d+$/.test(u.port)) throw new TypeError("Invalid URL: bad port");
    if (u.port !== "") {
      const n = Number(u.port);
      if (n > 65535) throw new TypeError("Invalid URL: port out of range");
      u.port = String(n);
      if (special[u.protocol] === u.port) u.port = "";
    }
    if (isSpecial && auth === "" && u.protocol !== "file:") throw new TypeError("Invalid URL: empty host");
    if (/[\u0000-\u0020#%\/:<>?@\[\\\]^|]/.test(auth.replace(/^\[.*\]$/, ""))) {
      try { auth = decodeURIComponent(auth); } catch (_) { throw new TypeError("Invalid URL: bad host"); }
      if (/[\u0000-\u0020#%\/:<>?@\[\\\]^|]/.test(auth)) throw new TypeError("Invalid URL: bad host");
    }
    u.hostname = isSpecial ? auth.toLowerCase() : auth;
    if (isSpecial && u.hostname.startsWith("[")) u.hostname = "[" + ipv6(u.hostname.slice(1, -1)) + "]";
    else if (isSpecial) u.hostname = ipv4(u.hostname) ?? u.hostname;
    parsePathQuery(u, rest, isSpecial);
  }
  // ipv4 is the WHATWG IPv4 parser: null for a host that does not end in a
  // number (a domain), else its dotted form (0x7f.1 is 127.0.0.1); throws
  // on a number that is not an address.
  function ipv4(host) {
    const parts = host.split(".");
    if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
    const last = parts[parts.length - 1];
    if (!/^(\d+|0[xX][0-9a-fA-F]*)$/.test(last)) return null;
    if (parts.length > 4) throw new TypeError("Invalid URL: bad IPv4 host");
    const nums = parts.map((p) => {
      let n;
      if (/^0[xX][0-9a-fA-F]*$/.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
      else if (/^0[0-7]+$/.test(p)) n = parseInt(p.slice(1), 8);
      else if (/^\d+$/.test(p)) n = Number(p);
      else throw new TypeError("Invalid URL: bad IPv4 host");
      return n;
    });
    for (let i = 0; i < nums.length - 1; i++) if (nums[i] > 255) throw new TypeError("Invalid URL: bad IPv4 host");
    if (nums[nums.length - 1] >= 256 ** (5 - nums.length)) throw new TypeError("Invalid URL: bad IPv4 host");
    let v = nums[nums.length - 1];
    for (let i = 0; i < nums.length - 1; i++) v += nums[i] * 256 ** (3 - i);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  }
  // ipv6 parses the address between the brackets and serializes it as the
  // standard does (lowercase, no leading zeros, the first longest run of
  // two or more zero pieces as ::); throws on an invalid address.
  function ipv6(s) {
    const bad = () => { throw new TypeError("Invalid URL: bad IPv6 host"); };
    let head = s, tail = "", compress = false;
    const dc = s.indexOf("::");
    if (dc >= 0) { compress = true; head = s.slice(0, dc); tail = s.slice(dc + 2); if (tail.includes("::")) bad(); }
    const pieces = (str) => {
      if (str === "") return [];
      const out = [];
      const ps = str.split(":");
      ps.forEach((p, i) => {
        if (i === ps.length - 1 && p.includes(".")) {
          const v4 = p.split(".");
          if (v4.length !== 4 || v4.some((x) => !/^(0|[1-9]\d{0,2})$/.test(x) || Number(x) > 255)) bad();
          out.push(Number(v4[0]) * 256 + Number(v4[1]), Number(v4[2]) * 256 + Number(v4[3]));
        } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
        else bad();
      });
      return out;
    };
    const h = pieces(head), t = pieces(tail);
    if (compress ? h.length + t.length > 7 : h.length !== 8) bad();
    const all = compress ? [...h, ...new Array(8 - h.length - t.length).fill(0), ...t] : h;
    let best = -1, bestLen = 1;
    for (let i = 0; i < 8;) {
      if (all[i] !== 0) { i++; continue; }
      let j = i;
      while (j < 8 && all[j] === 0) j++;
      if (j - i > bestLen) { best = i; bestLen = j - i; }
      i = j;
    }
    if (best < 0) return all.map((n) => n.toString(16)).join(":");
    const hex = (a) => a.map((n) => n.toString(16)).join(":");
    return hex(all.slice(0, best)) + "::" + hex(all.slice(best + bestLen));
  }
  function resolveRelative(s, base, u) {
    u.protocol = base.protocol;
    const isSpecial = u.protocol in special;
    if (isSpecial) s = s.replace(/\\/g, "/");
    if (s.startsWith("//")) { parseAuthority(u, s.slice(2), isSpecial); return u; }
    if (base._opaque) {
      if (s === "" ) { Object.assign(u, { pathname: base.pathname, _opaque: true, _query: base._query }); return u; }
      throw new TypeError(`Invalid URL: ${s}`);
    }
    u.username = base.username; u.password = base.password; u.hostname = base.hostname; u.port = base.port;
    if (s === "") { u.pathname = base.pathname; u._query = base._query; return u; }
    if (s.startsWith("?")) { u.pathname = base.pathname; u._query = s.slice(1); return u; }
    const qi = s.indexOf("?");
    let path = qi >= 0 ? s.slice(0, qi) : s;
    if (qi >= 0) u._query = s.slice(qi + 1);
    if (!path.startsWith("/")) {
      const dir = base.pathname.slice(0, base.pathname.lastIndexOf("/") + 1);
      path = (dir || "/") + path;
    }
    u.pathname = normPath(path.split("/").slice(1));
    return u;
  }
  class URL {
    constructor(url, base) {
      const b = base === undefined ? undefined : (base instanceof URL ? base._u : parseURL(base));
      this._u = parseURL(url instanceof URL ? url.href : url, b);
      this._sp = null;
    }
    static canParse(url, base) { try { new URL(url, base); return true; } catch (_) { return false; } }
    static parse(url, base) { try { return new URL(url, base); } catch (_) { return null; } }
    get protocol() { return this._u.protocol; }
    set protocol(v) { const p = String(v).replace(/:.*$/, "").toLowerCase(); if (/^[a-z][a-z0-9+.\-]*$/.test(p)) this._u.protocol = p + ":"; }
    get username() { return this._u.username; }
    set username(v) { this._u.username = pctEncode(String(v), USER_RE); }
    get password() { return this._u.password; }
    set password(v) { this._u.password = pctEncode(String(v), USER_RE); }
    get hostname() { return this._u.hostname; }
    set hostname(v) { if (!this._u._opaque) this._u.hostname = String(v).toLowerCase(); }
    get port() { return this._u.port; }
    set port(v) { v = String(v); if (v === "" || /^\d+$/.test(v)) this._u.port = special[this._u.protocol] === v ? "" : (v === "" ? "" : String(Number(v))); }
    get host() { return this._u.port ? `${this._u.hostname}:${this._u.port}` : this._u.hostname; }
    set host(v) { const m = /^([^:]*)(?::(\d*))?$/.exec(String(v)); if (m) { this.hostname = m[1]; if (m[2] !== undefined) this.port = m[2]; } }
    get origin() {
      const p = this._u.protocol;
      return p in special && p !== "file:" ? `${p}//${this.host}` : "null";
    }
    get pathname() { return this._u._opaque ? this._u.pathname : pctEncode(this._u.pathname, PATH_RE); }
    set pathname(v) {
      if (this._u._opaque) return;
      v = String(v);
      this._u.pathname = normPath((v.startsWith("/") ? v : "/" + v).split("/").slice(1));
    }
    get search() { const q = this._u._query; return q === null || q === "" ? "" : "?" + pctEncode(q, QUERY_RE); }
    set search(v) {
      v = String(v);
      if (v.startsWith("?")) v = v.slice(1);
      this._u._query = v === "" ? null : v;
      if (this._sp) this._sp._parse(v);
    }
    get searchParams() {
      if (!this._sp) { this._sp = new URLSearchParams(this._u._query || ""); this._sp._url = this._u; }
      return this._sp;
    }
    get hash() { const f = this._u._fragment; return f === null || f === "" ? "" : "#" + pctEncode(f, FRAG_RE); }
    set hash(v) { v = String(v); if (v.startsWith("#")) v = v.slice(1); this._u._fragment = v === "" ? null : v; }
    get href() {
      const u = this._u;
      let s = u.protocol;
      if (!u._opaque && (u.hostname !== "" || u.protocol in special)) {
        s += "//";
        if (u.username || u.password) s += u.username + (u.password ? ":" + u.password : "") + "@";
        s += this.host;
      }
      s += this.pathname;
      if (u._query !== null) s += "?" + pctEncode(u._query, QUERY_RE);
      if (u._fragment !== null) s += "#" + pctEncode(u._fragment, FRAG_RE);
      return s;
    }
    set href(v) { this._u = parseURL(v); if (this._sp) this._sp._parse(this._u._query || ""); }
    toString() { return this.href; }
    toJSON() { return this.href; }
    get [Symbol.toStringTag]() { return "URL"; }
  }
  return { URL, URLSearchParams };
})
