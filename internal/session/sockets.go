package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/coder/websocket"
)

// WebSockets. A session accepts one by answering a request with a 101
// Response carrying the client end of a WebSocketPair (isolate/websocket.js).
// The node, not the isolate, holds the connection: each message is a call
// into the session (activating it from its snapshot when it hibernated),
// and what the session sends goes through a bounded queue to a writer. So a
// session with open sockets hibernates like any other between messages.

// SocketLimits bound the WebSockets sessions hold; every socket is checked
// against them here and nowhere else.
type SocketLimits struct {
	// MaxMessageBytes caps one message either way; a larger one from a
	// client closes its socket with 1009 (message too big). Default 1 MiB.
	MaxMessageBytes int64
	// PerSession and PerTenant cap the open sockets of one session and of
	// all sessions of one tenant (the agents' owner). Defaults 32 and 1024.
	PerSession, PerTenant int
	// Idle closes a socket no message crossed for this long (1001).
	// Default 5 minutes.
	Idle time.Duration
	// SendQueue is how many messages may wait for one slow client; past it
	// the socket is closed (1008). Default 64.
	SendQueue int
}

func (l SocketLimits) withDefaults() SocketLimits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = 1 << 20
	}
	if l.PerSession <= 0 {
		l.PerSession = 32
	}
	if l.PerTenant <= 0 {
		l.PerTenant = 1024
	}
	if l.Idle <= 0 {
		l.Idle = 5 * time.Minute
	}
	if l.SendQueue <= 0 {
		l.SendQueue = 64
	}
	return l
}

type outMsg struct {
	typ    websocket.MessageType
	data   []byte
	close  bool
	code   websocket.StatusCode
	reason string
}

// socket is one open WebSocket of a session.
type socket struct {
	conn   *websocket.Conn
	tenant string
	out    chan outMsg
	idle   *time.Timer // reset by every message either way
}

// socketHub holds the open sockets of this node's sessions.
type socketHub struct {
	lim SocketLimits
	mu  sync.Mutex
	// open maps a session to its sockets by id; a nil *socket is reserved
	// (the session answered 101, the upgrade is under way) and collects
	// what the session sends meanwhile in pending.
	open     map[sessKey]map[string]*socket
	pending  map[sessKey]map[string][]outMsg
	byTenant map[string]int
}

func newSocketHub(lim SocketLimits) *socketHub {
	return &socketHub{lim: lim.withDefaults(), open: map[sessKey]map[string]*socket{},
		pending: map[sessKey]map[string][]outMsg{}, byTenant: map[string]int{}}
}

// reserve counts a socket against the limits before the upgrade.
func (hb *socketHub) reserve(k sessKey, id, tenant string) error {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if _, dup := hb.open[k][id]; dup {
		return api.Errorf(api.KindConflict, "WebSocket %s of session %s/%s is already open", id, k.agent, k.id)
	}
	if len(hb.open[k]) >= hb.lim.PerSession {
		return api.Errorf(api.KindRateLimited, "session %s/%s has %d WebSockets open, the most it may (per session)", k.agent, k.id, hb.lim.PerSession)
	}
	if hb.byTenant[tenant] >= hb.lim.PerTenant {
		return api.Errorf(api.KindRateLimited, "the agents of %q have %d WebSockets open, the most they may (per tenant)", tenant, hb.lim.PerTenant)
	}
	if hb.open[k] == nil {
		hb.open[k] = map[string]*socket{}
	}
	hb.open[k][id] = nil
	hb.byTenant[tenant]++
	return nil
}

// attach makes a reserved socket live and hands it what was sent meanwhile.
func (hb *socketHub) attach(k sessKey, id string, s *socket) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.open[k][id] = s
	for _, m := range hb.pending[k][id] {
		hb.enqueueLocked(s, m)
	}
	delete(hb.pending[k], id)
}

// release forgets a socket (reserved or live).
func (hb *socketHub) release(k sessKey, id, tenant string) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	delete(hb.open[k], id)
	if len(hb.open[k]) == 0 {
		delete(hb.open, k)
	}
	delete(hb.pending[k], id)
	if len(hb.pending[k]) == 0 {
		delete(hb.pending, k)
	}
	if hb.byTenant[tenant]--; hb.byTenant[tenant] <= 0 {
		delete(hb.byTenant, tenant)
	}
}

// enqueueLocked queues m for s's writer; a full queue closes the socket.
func (hb *socketHub) enqueueLocked(s *socket, m outMsg) {
	select {
	case s.out <- m:
	default:
		go func() { _ = s.conn.Close(websocket.StatusPolicyViolation, "the client reads too slowly") }()
	}
}

// invoke is the host side of ws.send and ws.close (service "websocket").
func (hb *socketHub) invoke(k sessKey, method string, args []byte) ([]byte, error) {
	var a struct {
		ID     string `json:"id"`
		Text   string `json:"text"`
		B64    string `json:"b64"`
		Code   int    `json:"code"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(args, &a); err != nil {
		return nil, isolate.HostErrorf("TypeError", "websocket.%s: %v", method, err)
	}
	var m outMsg
	switch method {
	case "send":
		m.typ, m.data = websocket.MessageText, []byte(a.Text)
		if a.B64 != "" {
			b, err := base64.StdEncoding.DecodeString(a.B64)
			if err != nil {
				return nil, isolate.HostErrorf("TypeError", "websocket.send: %v", err)
			}
			m.typ, m.data = websocket.MessageBinary, b
		}
		if int64(len(m.data)) > hb.lim.MaxMessageBytes {
			return nil, isolate.HostErrorf("RangeError", "WebSocket.send: the message is %d bytes; the limit is %d", len(m.data), hb.lim.MaxMessageBytes)
		}
	case "close":
		if len(a.Reason) > 123 {
			return nil, isolate.HostErrorf("SyntaxError", "WebSocket.close: the reason is over 123 bytes")
		}
		m.close, m.code, m.reason = true, websocket.StatusCode(a.Code), a.Reason
	default:
		return nil, isolate.HostErrorf("NotSupportedError", "websocket.%s", method)
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if s := hb.open[k][a.ID]; s != nil {
		hb.enqueueLocked(s, m)
		return nil, nil
	}
	// Not attached yet (sent before the 101 was answered, as Workers
	// allow): kept for attach, within the same bounds as a live queue.
	p := hb.pending[k]
	if p == nil {
		p = map[string][]outMsg{}
		hb.pending[k] = p
	}
	if _, ok := p[a.ID]; !ok && len(p) >= hb.lim.PerSession {
		return nil, isolate.HostErrorf("RangeError", "WebSocket.send: %d WebSockets of this session wait to be attached", len(p))
	}
	if len(p[a.ID]) >= hb.lim.SendQueue {
		return nil, isolate.HostErrorf("RangeError", "WebSocket.send: %d messages wait for the socket to be attached", len(p[a.ID]))
	}
	p[a.ID] = append(p[a.ID], m)
	return nil, nil
}

// closeAll closes every socket (the node is stopping).
func (hb *socketHub) closeAll() {
	hb.mu.Lock()
	var all []*socket
	for _, ss := range hb.open {
		for _, s := range ss {
			if s != nil {
				all = append(all, s)
			}
		}
	}
	hb.mu.Unlock()
	for _, s := range all {
		_ = s.conn.Close(websocket.StatusGoingAway, "the node is stopping")
	}
}

// ServeSocket runs the WebSocket a session accepted (socketID, from the
// 101 Response) until it closes: accept performs the upgrade once the
// limits allow it. Each message is one call into the session; the close
// is delivered too. It returns a problem, before any upgrade, when a limit
// refuses the socket.
func (m *Manager) ServeSocket(ctx context.Context, agent, id, socketID string, accept func() (*websocket.Conn, error)) error {
	k := sessKey{agent, id}
	ctx = context.WithoutCancel(ctx)
	info, _, err := m.AgentInfo(ctx, agent)
	if err != nil {
		return err
	}
	tenant := info.Owner
	if err := m.sockets.reserve(k, socketID, tenant); err != nil {
		_, _ = m.socketEvent(ctx, k, isolate.SocketEvent{Socket: socketID, Kind: "close", Code: 1013, Reason: "too many WebSockets"})
		return err
	}
	defer m.sockets.release(k, socketID, tenant)
	conn, err := accept()
	if err != nil {
		_, _ = m.socketEvent(ctx, k, isolate.SocketEvent{Socket: socketID, Kind: "close", Code: 1006, Reason: "the upgrade failed"})
		return nil // accept answered the client
	}
	lim := m.sockets.lim
	conn.SetReadLimit(lim.MaxMessageBytes)
	s := &socket{conn: conn, tenant: tenant, out: make(chan outMsg, lim.SendQueue)}
	// No message either way for lim.Idle: closed with 1001.
	var idle atomic.Bool
	s.idle = time.AfterFunc(lim.Idle, func() {
		idle.Store(true)
		_ = conn.Close(websocket.StatusGoingAway, "idle timeout")
	})
	defer s.idle.Stop()
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	go s.write(wctx, lim.Idle)
	m.sockets.attach(k, socketID, s)
	for {
		typ, data, err := conn.Read(ctx)
		s.idle.Reset(lim.Idle)
		if err != nil {
			code, reason := websocket.CloseStatus(err), ""
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				reason = ce.Reason
			}
			switch {
			case errors.Is(err, websocket.ErrMessageTooBig):
				code, reason = websocket.StatusMessageTooBig, "message too big"
			case idle.Load():
				code, reason = websocket.StatusGoingAway, "idle timeout"
			case code == -1:
				code = websocket.StatusAbnormalClosure
			}
			_, _ = m.socketEvent(ctx, k, isolate.SocketEvent{Socket: socketID, Kind: "close", Code: int(code), Reason: reason})
			return nil
		}
		ev := isolate.SocketEvent{Socket: socketID, Kind: "message", Text: string(data)}
		if typ == websocket.MessageBinary {
			ev.Text, ev.Binary = "", data
		}
		known, err := m.socketEvent(ctx, k, ev)
		switch {
		case err != nil:
			m.log.Warn("websocket message failed", "agent", agent, "session", id, "err", err)
			_ = conn.Close(websocket.StatusInternalError, "the session failed")
			return nil
		case !known:
			_ = conn.Close(websocket.StatusInternalError, "the session no longer has this WebSocket")
			return nil
		}
	}
}

// write sends what the session queued, one message at a time, each within
// the idle time.
func (s *socket) write(ctx context.Context, idle time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.out:
			if m.close {
				_ = s.conn.Close(m.code, m.reason)
				return
			}
			wctx, cancel := context.WithTimeout(ctx, idle)
			err := s.conn.Write(wctx, m.typ, m.data)
			cancel()
			if err != nil {
				return
			}
			s.idle.Reset(idle)
		}
	}
}

// socketEventer is an instance that takes WebSocket events (JS isolates).
type socketEventer interface {
	SocketEvent(ctx context.Context, ev isolate.SocketEvent, h isolate.Host) (bool, error)
}

// socketEvent runs one WebSocket event in the session as a request of its
// own: activated as needed, under the call limits, its writes committed.
func (m *Manager) socketEvent(ctx context.Context, k sessKey, ev isolate.SocketEvent) (known bool, err error) {
	s, err := m.acquire(ctx, k.agent, k.id)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	se, ok := s.iso.(socketEventer)
	if !ok {
		return false, fmt.Errorf("session %s/%s: this agent kind takes no WebSockets", k.agent, k.id)
	}
	h := &callHost{m: m, s: s, ctx: ctx}
	known, err = se.SocketEvent(m.limitCtx(ctx, false, s.ver, h), ev, h)
	cause := h.endCall()
	if err != nil {
		return false, m.callFailed(s, err, cause)
	}
	if err := h.commit(ctx); err != nil {
		return false, err
	}
	m.touch(s)
	m.requestDone(s)
	m.maybeEvict()
	return known, nil
}
