package isolate

import (
	"testing"
	"time"
)

// TestMessageCloseErrorEventsClass: MessageEvent, CloseEvent, ErrorEvent
// and PromiseRejectionEvent are Events with their init dictionaries'
// members and defaults, refuse bogus arguments with a TypeError, and
// dispatch through an EventTarget like any Event.
func TestMessageCloseErrorEventsClass(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"message defaults", `(() => { const e = new MessageEvent("message"); return [e instanceof Event, e.type, e.data, e.origin, e.lastEventId, e.source, e.ports.length, Object.isFrozen(e.ports), String(e)] })()`,
			`[true,"message",null,"","",null,0,true,"[object MessageEvent]"]`},
		{"message init", `(() => { const e = new MessageEvent("m", {data: {a: 1}, origin: "o", lastEventId: "7", cancelable: true}); e.preventDefault(); return [e.data.a, e.origin, e.lastEventId, e.defaultPrevented] })()`,
			`[1,"o","7",true]`},
		{"close", `(() => { const d = new CloseEvent("close"), e = new CloseEvent("close", {code: 1001, reason: "bye", wasClean: true}); return [d.code, d.reason, d.wasClean, e.code, e.reason, e.wasClean, e instanceof Event] })()`,
			`[0,"",false,1001,"bye",true,true]`},
		{"error", `(() => { const x = new Error("boom"), d = new ErrorEvent("error"), e = new ErrorEvent("error", {message: "m", filename: "f.js", lineno: 3, colno: 4, error: x});
			return [d.message, d.filename, d.lineno, d.colno, d.error, e.message, e.filename, e.lineno, e.colno, e.error === x] })()`,
			`["","",0,0,null,"m","f.js",3,4,true]`},
		{"rejection", `(() => { const p = Promise.resolve(1), e = new PromiseRejectionEvent("unhandledrejection", {promise: p, reason: "r"}); return [e.promise === p, e.reason, e instanceof Event] })()`,
			`[true,"r",true]`},
		{"dispatch", `(() => { const t = new EventTarget(); let got; t.addEventListener("message", (e) => got = e); t.dispatchEvent(new MessageEvent("message", {data: "d"})); return [got instanceof MessageEvent, got.target === t, got.data] })()`,
			`[true,true,"d"]`},
		{"bogus", `[() => new MessageEvent(), () => new CloseEvent(), () => new ErrorEvent(), () => new PromiseRejectionEvent("x"), () => new PromiseRejectionEvent("x", {}),
			() => new MessageEvent("m", {ports: 5}), () => MessageEvent("m")].map((f) => { try { f(); return "no error"; } catch (e) { return e.name; } })`,
			`["TypeError","TypeError","TypeError","TypeError","TypeError","TypeError","TypeError"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := evalJS(t, c.expr); got != c.want {
				t.Fatalf("%s\n got %s\nwant %s", c.expr, got, c.want)
			}
		})
	}
}

// TestWebSocketListenerEventsClass: a WebSocket accepted with ws.accept()
// hands its listeners and on-handlers MessageEvent and CloseEvent
// instances (target the socket), and an abnormal closure (1006) an
// ErrorEvent before the CloseEvent.
func TestWebSocketListenerEventsClass(t *testing.T) {
	iso := newIsolate(t, `
const seen = [];
export default { async fetch(req) {
	if (new URL(req.url).pathname === "/seen") return Response.json(seen);
	const [client, server] = Object.values(new WebSocketPair());
	server.accept();
	const log = (e) => seen.push([e.type, e.constructor.name, e instanceof Event, e.target === server, e.data ?? e.code ?? e.message, e.wasClean]);
	server.addEventListener("message", log);
	server.addEventListener("close", log);
	server.addEventListener("error", log);
	server.onmessage = (e) => seen.push(["on", e instanceof MessageEvent]);
	return new Response(null, { status: 101, webSocket: client });
} }`)
	h := newMemHost()
	ctx := ctxTimeout(t, 10*time.Second)
	var ids []string
	for range 2 {
		resp, err := iso.Fetch(ctx, Request{Method: "GET", URL: "http://a/ws"}, h)
		if err != nil || resp.Status != 101 {
			t.Fatalf("upgrade: %d %v", resp.Status, err)
		}
		ids = append(ids, resp.Header(":websocket"))
	}
	for _, ev := range []SocketEvent{
		{Socket: ids[0], Kind: "message", Text: "hi"},
		{Socket: ids[0], Kind: "message", Binary: []byte{1, 2}},
		{Socket: ids[0], Kind: "close", Code: 1000, Reason: "done"},
		{Socket: ids[1], Kind: "close", Code: 1006},
	} {
		if known, err := iso.SocketEvent(ctx, ev, h); err != nil || !known {
			t.Fatalf("%+v: %v %v", ev, known, err)
		}
	}
	want := `[["on",true],["message","MessageEvent",true,true,"hi",null],["on",true],["message","MessageEvent",true,true,{},null],` +
		`["close","CloseEvent",true,true,1000,true],["error","ErrorEvent",true,true,"the WebSocket connection closed abnormally",null],["close","CloseEvent",true,true,1006,false]]`
	if got := get(t, iso, h, "http://a/seen"); got != want {
		t.Fatalf("events:\n got %s\nwant %s", got, want)
	}
}
