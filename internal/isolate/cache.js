// cache.js: the Cache API of Workers (caches.default, caches.open(name),
// Cache.match, put and delete), compiled by the prelude on first use (host
// op "lib"). Responses are kept by the host, outside the heap (host op
// "cache", cache.go): per node, in memory and bounded, shared by an
// agent's sessions and by nobody else. What may be stored and until when
// (Cache-Control, Expires, Set-Cookie) is decided there; the checks that
// must not consume the response's body first are made here too.
(function (host, Request, Response, toAB) {
  "use strict";
  const names = new WeakMap(); // Cache -> its name in the host
  const illegal = () => new TypeError("Illegal constructor");
  const NULL_BODY = [101, 204, 205, 304];

  // key returns the Request a cache operation is about: a Request, or a
  // URL (anything else is stringified, as RequestInfo is).
  function key(req, op) {
    if (req === undefined || req === null) throw new TypeError(`Cache.${op}: a Request or URL is required`);
    const r = req instanceof Request ? req : new Request(String(req));
    const u = r.url, h = u.indexOf("#");
    if (!/^https?:/i.test(u)) throw new TypeError(`Cache.${op}: only http and https URLs can be cached, not ${JSON.stringify(u)}`);
    return { r, url: h < 0 ? u : u.slice(0, h) };
  }
  const ignoresMethod = (opts) => opts !== null && typeof opts === "object" && !!opts.ignoreMethod;

  // body reads a response's body fully, at most cap bytes of it.
  async function body(res, cap) {
    if (res.bodyUsed) throw new TypeError("Cache.put: the response's body has already been used");
    const s = res._stream;
    if (s === null || s === undefined) {
      const b = await res.arrayBuffer();
      if (b.byteLength > cap) throw new RangeError(`Cache.put: the response's body is ${b.byteLength} bytes; the limit is ${cap}`);
      return b;
    }
    const rd = s.getReader(); // a locked stream throws a TypeError here
    res._used = true;
    const parts = [];
    let size = 0;
    for (;;) {
      const { done, value } = await rd.read();
      if (done) break;
      let u;
      try { u = new Uint8Array(toAB(value)); } catch (e) { await rd.cancel(e).catch(() => {}); throw new TypeError("Cache.put: the response's body stream gave a chunk that is not bytes"); }
      size += u.byteLength;
      if (size > cap) {
        await rd.cancel().catch(() => {});
        throw new RangeError(`Cache.put: the response's body is over ${cap} bytes, the limit`);
      }
      parts.push(u);
    }
    const all = new Uint8Array(size);
    let at = 0;
    for (const p of parts) { all.set(p, at); at += p.byteLength; }
    return all.buffer;
  }

  class Cache {
    constructor() { throw illegal(); }
    // match answers the stored response, or undefined on a miss (and for
    // a request other than GET, unless options.ignoreMethod).
    async match(request, options) {
      const name = slot(this), { r, url } = key(request, "match");
      if (r.method !== "GET" && !ignoresMethod(options)) return undefined;
      const hit = host("cache", "match", name, url);
      if (hit === undefined) return undefined;
      const m = JSON.parse(hit[0]);
      const res = new Response(NULL_BODY.includes(m.status) ? null : hit[1], { status: m.status, statusText: m.statusText, headers: m.headers });
      res.headers.set("cf-cache-status", "HIT");
      res.url = url;
      return res;
    }
    // put stores response under request (GET only). A response Workers
    // will not cache (no-store, private, Set-Cookie) is read and dropped;
    // a 206, Vary: *, a used body or a non-GET request is a TypeError.
    async put(request, response) {
      const name = slot(this), { r, url } = key(request, "put");
      if (r.method !== "GET") throw new TypeError("Cache.put: Cannot cache response to non-GET request.");
      if (!(response instanceof Response)) throw new TypeError("Cache.put: the second argument must be a Response");
      if (response.status === 206) throw new TypeError("Cannot cache response to a range request (206 Partial Content).");
      if (response.webSocket) throw new TypeError("Cache.put: a WebSocket response cannot be cached");
      const vary = response.headers.get("vary");
      if (vary !== null && vary.split(",").some((v) => v.trim() === "*")) throw new TypeError("Cannot cache response with 'Vary: *' header.");
      const b = await body(response, host("cache", "limit"));
      const meta = JSON.stringify({ status: response.status, statusText: response.statusText, headers: Array.from(response.headers) });
      host("cache", "put", name, url, meta, b);
    }
    // delete removes the entry and answers whether there was one.
    async delete(request, options) {
      const name = slot(this), { r, url } = key(request, "delete");
      if (r.method !== "GET" && !ignoresMethod(options)) return false;
      return host("cache", "delete", name, url) === 1;
    }
    get [Symbol.toStringTag]() { return "Cache"; }
  }
  function slot(c) {
    const n = names.get(c);
    if (n === undefined) throw new TypeError("Illegal invocation: not a Cache");
    return n;
  }
  const makeCache = (name) => { const c = Object.create(Cache.prototype); names.set(c, name); return c; };

  // The default cache is named "" in the host; caches.open(name) ones
  // "n:" + name, so no name reaches the default one.
  const opened = new Map();
  const dflt = makeCache("");
  class CacheStorage {
    constructor() { throw illegal(); }
    get default() { return dflt; }
    async open(name) {
      if (arguments.length === 0) throw new TypeError("CacheStorage.open: a name is required");
      name = String(name);
      if (name.length > 1024) throw new TypeError("CacheStorage.open: the name is longer than 1024 characters");
      let c = opened.get(name);
      if (c === undefined) opened.set(name, (c = makeCache("n:" + name)));
      return c;
    }
    get [Symbol.toStringTag]() { return "CacheStorage"; }
  }
  const caches = Object.create(CacheStorage.prototype);
  return { caches, Cache, CacheStorage };
})
