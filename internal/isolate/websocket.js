// websocket.js: WebSocketPair and the server end of a WebSocket, compiled by
// the prelude on first use (host op "lib"). The session layer holds the
// connection; this side keeps the sockets a session accepted in a map in the
// heap, so they survive hibernation, and turns events the host delivers
// (socket.go) into webSocketMessage/webSocketClose calls (sockets accepted
// with ctx.acceptWebSocket, the Durable Objects hibernation API) or into
// "message"/"close" events (sockets accepted with ws.accept()). send and
// close are host calls (service "websocket", sockets.go in the session
// layer).
//
// events, when given, returns webapi.js's exports: listeners then get
// MessageEvent, CloseEvent and ErrorEvent instances. A prelude from before
// it (in a heap restored from an old snapshot) passes none, and its
// listeners get plain objects as they did.
(function (invoke, toAB, b64enc, events) {
  "use strict";
  const sockets = new Map(); // id -> accepted server end
  let next = 0;
  const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  const fail = (msg) => new TypeError(msg);

  class WebSocket {
    constructor() { throw fail("outbound WebSockets are not supported; a session accepts them with new WebSocketPair()"); }
    accept() { accept(this, "accept", []); }
    send(data) {
      if (!this._server) throw fail("send: this is the client end of the pair; use the other one");
      if (this._mode === null) throw fail("send: accept() the WebSocket first");
      if (this.readyState !== OPEN) throw fail("send: the WebSocket is closed");
      if (typeof data === "string") invoke("websocket", "send", { id: this._id, text: data });
      else invoke("websocket", "send", { id: this._id, b64: b64enc(toAB(data)) });
    }
    close(code = 1000, reason = "") {
      if (this.readyState >= CLOSING) return;
      code = Number(code);
      if (code !== 1000 && !(code >= 3000 && code <= 4999)) throw fail(`close: invalid code ${code}`);
      this.readyState = CLOSED;
      sockets.delete(this._id);
      invoke("websocket", "close", { id: this._id, code, reason: String(reason) });
    }
    addEventListener(type, fn) { (this._l[type] || (this._l[type] = [])).push(fn); }
    removeEventListener(type, fn) { if (this._l[type]) this._l[type] = this._l[type].filter((f) => f !== fn); }
    serializeAttachment(v) { this._att = structuredClone(v); }
    deserializeAttachment() { return this._att === undefined ? null : structuredClone(this._att); }
    get url() { return null; }
    get protocol() { return ""; }
    get extensions() { return ""; }
    get [Symbol.toStringTag]() { return "WebSocket"; }
  }
  Object.assign(WebSocket, { CONNECTING, OPEN, CLOSING, CLOSED });

  function make(id, server) {
    const ws = Object.create(WebSocket.prototype);
    Object.assign(ws, { _id: id, _server: server, _mode: null, _tags: [], _att: undefined, _l: { __proto__: null },
      readyState: CONNECTING, onmessage: null, onclose: null, onerror: null });
    return ws;
  }
  class WebSocketPair {
    constructor() {
      const id = String(++next);
      this[0] = make(id, false);
      this[1] = make(id, true);
    }
  }
  function accept(ws, mode, tags) {
    if (!(ws instanceof WebSocket) || !ws._server) throw fail("accept: expected the server end of a WebSocketPair");
    if (ws._mode !== null) throw fail("accept: the WebSocket was already accepted");
    ws._mode = mode;
    ws._tags = Array.from(tags || [], String);
    ws.readyState = OPEN;
    sockets.set(ws._id, ws);
  }
  // makeEvent builds what a listener of type gets.
  function makeEvent(ws, type, init) {
    if (typeof events !== "function") return Object.assign({ type }, init);
    const E = events(), C = type === "message" ? E.MessageEvent : type === "close" ? E.CloseEvent : E.ErrorEvent;
    const ev = new C(type, init);
    ev.target = ws; ev.currentTarget = ws;
    return ev;
  }
  function emit(ws, type, init) {
    const ev = makeEvent(ws, type, init);
    const on = ws["on" + type];
    if (typeof on === "function") on.call(ws, ev);
    for (const f of ws._l[type] || []) f.call(ws, ev);
  }
  // event runs one host event: "\x01kind\0id\0rest" (rest: a text message,
  // or "code\0reason" of a close), body an ArrayBuffer for a binary message.
  // It resolves to "ok", or "unknown" when no open socket has the id.
  async function event(meta, body, handler) {
    const a = meta.indexOf("\0"), b = meta.indexOf("\0", a + 1);
    const kind = meta.slice(1, a), id = meta.slice(a + 1, b), rest = meta.slice(b + 1);
    const ws = sockets.get(id);
    if (ws === undefined) return "unknown";
    const h = handler || {};
    if (kind === "message") {
      const data = body === undefined ? rest : body;
      if (ws._mode === "hibernate") {
        if (typeof h.webSocketMessage !== "function") throw fail("a WebSocket accepted with acceptWebSocket needs a webSocketMessage handler");
        await h.webSocketMessage(ws, data);
      } else emit(ws, "message", { data });
      return "ok";
    }
    const c = rest.indexOf("\0"), code = Number(rest.slice(0, c)), reason = rest.slice(c + 1);
    ws.readyState = CLOSED;
    sockets.delete(id);
    if (ws._mode === "hibernate") {
      if (typeof h.webSocketClose === "function") await h.webSocketClose(ws, code, reason, code !== 1006);
    } else {
      // An abnormal closure (1006: the connection dropped) is an error
      // first, as in a browser.
      try {
        if (code === 1006) emit(ws, "error", { message: "the WebSocket connection closed abnormally" });
      } finally {
        emit(ws, "close", { code, reason, wasClean: code !== 1006 }); // even when an error listener threw
      }
    }
    return "ok";
  }
  const list = (tag) => Array.from(sockets.values()).filter((ws) => ws._mode === "hibernate" && ws.readyState === OPEN &&
    (tag === undefined || ws._tags.includes(String(tag))));
  // peerOf is the id a 101 Response's webSocket (the client end) answers with.
  function peerOf(client) {
    if (!(client instanceof WebSocket) || client._server) throw fail("Response: webSocket must be the client end of a WebSocketPair");
    const server = sockets.get(client._id);
    if (server === undefined) throw fail("Response: accept the server end of the WebSocketPair before returning it");
    return client._id;
  }
  return {
    WebSocket, WebSocketPair, event, peerOf,
    acceptWebSocket: (ws, tags) => accept(ws, "hibernate", tags),
    getWebSockets: list,
    getTags: (ws) => ws._tags.slice(),
  };
})
