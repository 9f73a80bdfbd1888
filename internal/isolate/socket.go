package isolate

import (
	"context"
	"strconv"
	"strings"
)

// WebSocket events. The session layer holds a session's WebSockets (the
// isolate never sees a connection) and hands each event of one to the
// isolate as a call of its own, so a session may hibernate between
// messages: the sockets' JavaScript objects (websocket.js) live in the heap
// and are back after a restore. The driver's fetch function takes the
// event: its wire string starts with "\x01" (a request's starts with a
// method name).

// SocketEvent is one WebSocket event for an isolate.
type SocketEvent struct {
	// Socket is the id websocket.js gave the socket (Response header
	// ":websocket" of the 101 that accepted it).
	Socket string
	// Kind is "message" or "close".
	Kind string
	// Text or Binary is a message's data (Binary set: a binary message).
	Text   string
	Binary []byte
	// Code and Reason are a close's.
	Code   int
	Reason string
}

// SocketEvent delivers ev to the socket's handler (webSocketMessage or
// webSocketClose on the module's default export for sockets accepted with
// ctx.acceptWebSocket, else the socket's event listeners). It reports
// false when the heap knows no such open socket (the session lost it, say
// to a crash that restored an older snapshot): the caller should close it.
func (i *Isolate) SocketEvent(ctx context.Context, ev SocketEvent, h Host) (known bool, err error) {
	if err := i.begin(); err != nil {
		return false, err
	}
	defer func() { i.end(ctx, err) }()
	ctx, done := i.enter(ctx, h)
	defer done()
	v := i.vm
	if len(ev.Text) > i.rt.cfg.MaxBodyBytes || len(ev.Binary) > i.rt.cfg.MaxBodyBytes {
		return false, ErrRequestTooLarge
	}
	var meta strings.Builder
	meta.WriteString("\x01" + ev.Kind + "\x00" + ev.Socket + "\x00")
	switch ev.Kind {
	case "close":
		meta.WriteString(strconv.Itoa(ev.Code) + "\x00" + ev.Reason)
	default:
		meta.WriteString(ev.Text)
	}
	mb, err := v.newString(ctx, false, meta.String())
	if err != nil {
		return false, err
	}
	bb := v.st.Undefined
	if ev.Binary != nil {
		if bb, err = v.newArrayBuffer(ctx, false, ev.Binary); err != nil {
			_ = v.free(ctx, mb)
			return false, err
		}
		defer func() { _ = v.free(ctx, bb) }()
	}
	res, err := v.callFn(ctx, v.st.Fns[fnFetch], mb, bb)
	_ = v.free(ctx, mb)
	if err != nil {
		return false, i.finishCall(ctx, err)
	}
	p := res
	res, err = i.settle(ctx, p)
	_ = v.free(ctx, p)
	if err != nil {
		return false, i.finishCall(ctx, err)
	}
	s, err := v.str(ctx, false, res, 16, false)
	_ = v.free(ctx, res)
	if err != nil {
		return false, i.finishCall(ctx, err)
	}
	return s == "ok", i.finishCall(ctx, nil)
}
