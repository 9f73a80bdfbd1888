package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// PeerLink is the client side of the links between members (PeerTransport):
// HTTP/1.1 over kept-alive, mutually authenticated TLS connections.
//
// A forwarded request of known length is written and its answer read in
// the goroutine that forwards it: the request's header and body go out in
// one write, the answer is read from the connection as it arrives, and the
// connection goes back to the idle set when the answer's body has been
// read to its end. net/http's Transport hands each request to a writer
// goroutine and each answer over from a reader goroutine, two wake-ups per
// request that cost tens of microseconds each on a loaded machine
// (docs/RATIONALE.md, "Why the peer link is not net/http's Transport").
// Requests that need those goroutines — a body of unknown length (it may
// stream while the answer does), a protocol upgrade, Expect: 100-continue
// — go through Fallback, net/http's Transport over the same TLS.
type PeerLink struct {
	// Fallback carries the requests the link does not (see above).
	Fallback *http.Transport

	tls         *tls.Config
	maxIdle     int
	idleTimeout time.Duration
	dialTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*peerConn // by "scheme://addr", most recently used last
}

// peerConn is one kept-alive connection of a PeerLink.
type peerConn struct {
	key  string
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time // when it went idle
}

var _ http.RoundTripper = (*PeerLink)(nil)

// linkAborted is a deadline in the past: setting it fails the connection's
// reads and writes in progress (a cancelled request).
var linkAborted = time.Unix(1, 0)

// RoundTrip implements http.RoundTripper.
func (l *PeerLink) RoundTrip(req *http.Request) (*http.Response, error) {
	if !l.direct(req) {
		return l.Fallback.RoundTrip(req)
	}
	resp, again, err := l.exchange(req, true)
	if again {
		// A kept-alive connection the peer had closed (it restarted),
		// and the request may be sent again on a new one: as net/http's
		// Transport, when nothing of it was written, or the peer
		// answered nothing to a request that may be repeated.
		resp, _, err = l.exchange(req, false)
	}
	return resp, err
}

// direct reports whether req goes over the link itself rather than
// Fallback.
func (l *PeerLink) direct(req *http.Request) bool {
	if req.URL == nil || req.URL.Host == "" || (req.URL.Scheme != "https" && req.URL.Scheme != "http") {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength <= 0 {
		return false // unknown length: may stream both ways
	}
	if len(req.TransferEncoding) > 0 || req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" ||
		len(req.Trailer) > 0 {
		return false
	}
	return true
}

// replayable reports whether req may be sent twice (net/http's rule).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// exchange sends req over one connection (a kept-alive one if reuse and
// one is idle) and reads the answer's header. again says that it failed
// on a kept-alive connection in a way that allows sending req once more.
func (l *PeerLink) exchange(req *http.Request, reuse bool) (_ *http.Response, again bool, _ error) {
	ctx := req.Context()
	key := req.URL.Scheme + "://" + req.URL.Host
	var pc *peerConn
	if reuse {
		pc = l.take(key)
	}
	reused := pc != nil
	if !reused {
		var err error
		if pc, err = l.dial(ctx, req.URL.Scheme, req.URL.Host); err != nil {
			return nil, false, err
		}
		pc.key = key
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(linkAborted) })
	fail := func(err error, again bool) (*http.Response, bool, error) {
		stop()
		_ = pc.conn.Close()
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("peer link: %w", ctx.Err())
		}
		return nil, reused && again, err
	}
	empty := req.Body == nil || req.Body == http.NoBody
	if err := req.Write(pc.bw); err != nil {
		return fail(fmt.Errorf("peer link: write: %w", err), empty)
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(fmt.Errorf("peer link: write: %w", err), empty)
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		return fail(fmt.Errorf("peer link: read: %w", err), replayable(req))
	}
	for resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		// An informational answer (103 Early Hints): the final one follows.
		if resp, err = http.ReadResponse(pc.br, req); err != nil {
			return fail(fmt.Errorf("peer link: read: %w", err), false)
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Never asked for (upgrades go through Fallback).
		return fail(errors.New("peer link: the peer switched protocols unasked"), false)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		l.release(pc, stop, keep)
		return resp, false, nil
	}
	resp.Body = &linkBody{rc: resp.Body, l: l, pc: pc, stop: stop, keep: keep}
	return resp, false, nil
}

// dial opens a connection to addr: TLS with the link's configuration
// (offering HTTP/1.1 only) for https, plain TCP for http (tests).
func (l *PeerLink) dial(ctx context.Context, scheme, addr string) (*peerConn, error) {
	ctx, cancel := context.WithTimeout(ctx, l.dialTimeout)
	defer cancel()
	nd := &net.Dialer{KeepAlive: 30 * time.Second}
	var conn net.Conn
	var err error
	if scheme == "https" {
		cfg := l.tls.Clone()
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if cfg.ServerName == "" {
			if host, _, herr := net.SplitHostPort(addr); herr == nil {
				cfg.ServerName = host
			}
		}
		cfg.NextProtos = []string{"http/1.1"}
		conn, err = (&tls.Dialer{NetDialer: nd, Config: cfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = nd.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("peer link: dial %s: %w", addr, err)
	}
	return &peerConn{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 16<<10)}, nil
}

// take returns an idle connection to key that is still open, or nil.
func (l *PeerLink) take(key string) *peerConn {
	for {
		l.mu.Lock()
		conns := l.idle[key]
		if len(conns) == 0 {
			l.mu.Unlock()
			return nil
		}
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		l.idle[key] = conns[:len(conns)-1]
		l.mu.Unlock()
		if time.Since(pc.used) < l.idleTimeout && pc.open() {
			return pc
		}
		_ = pc.conn.Close()
	}
}

// open reports whether an idle connection is still usable: nothing
// unread (the peer sends nothing between answers; a TLS alert or
// anything else means it is closing) and not closed by the peer, asked of
// the socket without waiting (one recv with MSG_PEEK).
func (pc *peerConn) open() bool {
	if pc.br.Buffered() > 0 {
		return false
	}
	nc := pc.conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n < 0 && (errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK))
		return true
	}); err != nil {
		return false
	}
	return alive
}

// release ends a request's use of pc: back to the idle set if keep (and
// the request was not cancelled meanwhile) and there is room, else
// closed.
func (l *PeerLink) release(pc *peerConn, stop func() bool, keep bool) {
	if !stop() || !keep {
		_ = pc.conn.Close()
		return
	}
	pc.used = time.Now()
	l.mu.Lock()
	if l.idle == nil {
		l.idle = make(map[string][]*peerConn)
	}
	if len(l.idle[pc.key]) < l.maxIdle {
		l.idle[pc.key] = append(l.idle[pc.key], pc)
		pc = nil
	}
	l.mu.Unlock()
	if pc != nil {
		_ = pc.conn.Close()
	}
}

// CloseIdleConnections closes the link's idle connections and
// Fallback's.
func (l *PeerLink) CloseIdleConnections() {
	l.mu.Lock()
	idle := l.idle
	l.idle = nil
	l.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			_ = pc.conn.Close()
		}
	}
	l.Fallback.CloseIdleConnections()
}

// linkBody is the body of an answer read over a PeerLink connection: read
// to its end, it gives the connection back; closed before, it closes it
// (the rest of the answer is not read).
type linkBody struct {
	rc   io.ReadCloser
	l    *PeerLink
	pc   *peerConn
	stop func() bool
	keep bool
	err  error // the error that ended it, io.EOF at its end
}

func (b *linkBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err != nil {
		if err == io.EOF {
			b.err = io.EOF
			b.l.release(b.pc, b.stop, b.keep)
			return n, err
		}
		cancelled := !b.stop()
		_ = b.pc.conn.Close()
		if cancelled && errors.Is(err, os.ErrDeadlineExceeded) {
			err = context.Canceled
		}
		b.err = fmt.Errorf("peer link: read: %w", err)
		return n, b.err
	}
	return n, nil
}

func (b *linkBody) Close() error {
	if b.err != nil {
		return nil
	}
	b.err = errors.New("peer link: read of a closed body")
	// Close the connection first: the body's own Close would read the
	// rest of the answer (a stream may never end).
	b.stop()
	_ = b.pc.conn.Close()
	_ = b.rc.Close()
	return nil
}
