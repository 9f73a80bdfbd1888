package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServeHTTP is the forward proxy: absolute-URI requests and CONNECT. The
// caller is named by Config.Identify.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, err := p.cfg.Identify(r)
	if err != nil {
		w.Header().Set("Proxy-Authenticate", "Bearer")
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	p.serve(w, r, caller)
}

// Handler returns a forward-proxy handler bound to one caller, for a
// listener dedicated to one sandbox.
func (p *Proxy) Handler(caller Caller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.serve(w, r, caller) })
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, caller Caller) {
	if r.Method == http.MethodConnect {
		p.handleConnect(w, r, caller)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "this is a forward proxy: absolute URI required", http.StatusBadRequest)
		return
	}
	r.Header.Del("Proxy-Authorization")
	resp, err := p.Do(r.Context(), caller, r)
	if err != nil {
		writeError(w, err)
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		p.cfg.Logger.Debug("egress copy response", "host", r.URL.Host, "err", err)
	}
}

// statusFor maps an egress error to the status the client sees.
func statusFor(err error) (int, string) {
	var de *DeniedError
	switch {
	case errors.As(err, &de) && de.Verdict == Pending:
		return http.StatusForbidden, "pending"
	case errors.As(err, &de):
		return http.StatusForbidden, "denied"
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, "error"
	case errors.Is(err, ErrTooLarge):
		return http.StatusBadGateway, "too_large"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timeout"
	default:
		return http.StatusBadGateway, "error"
	}
}

// StatusHeader carries the egress outcome on proxy-generated responses:
// denied, pending, too_large, timeout or error.
const StatusHeader = "X-Agentcloud-Egress"

func writeError(w http.ResponseWriter, err error) {
	code, tag := statusFor(err)
	w.Header().Set(StatusHeader, tag)
	http.Error(w, err.Error(), code)
}

func errorResponse(req *http.Request, err error) *http.Response {
	code, tag := statusFor(err)
	body := err.Error() + "\n"
	return &http.Response{
		StatusCode:    code,
		ProtoMajor:    1,
		ProtoMinor:    1,
		Request:       req,
		Header:        http.Header{StatusHeader: {tag}, "Content-Type": {"text/plain; charset=utf-8"}},
		ContentLength: int64(len(body)),
		Body:          io.NopCloser(strings.NewReader(body)),
	}
}

func (p *Proxy) handleConnect(w http.ResponseWriter, r *http.Request, caller Caller) {
	host, portStr, err := net.SplitHostPort(r.Host)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port < 1 || port > 65535 || host == "" {
		http.Error(w, "CONNECT target must be host:port", http.StatusBadRequest)
		return
	}
	host = strings.ToLower(host)
	ctx := r.Context()
	if p.leaves == nil {
		// Plain tunnel: decided once, no secrets, no per-request view.
		er := Request{Caller: caller, Scheme: "tunnel", Method: http.MethodConnect, Host: host, Port: port}
		if err := p.decide(ctx, er); err != nil {
			writeError(w, err)
			return
		}
		upstream, err := p.dial(ctx, "tcp", net.JoinHostPort(host, portStr))
		if err != nil {
			p.audit(ctx, Event{Time: p.cfg.Now(), Request: er, Outcome: "error", Reason: err.Error()})
			writeError(w, err)
			return
		}
		p.audit(ctx, Event{Time: p.cfg.Now(), Request: er, Outcome: Allow.String()})
		client, err := hijack(w)
		if err != nil {
			upstream.Close()
			return
		}
		tunnel(client, upstream)
		return
	}
	// Intercept: refuse address literals early; everything else is decided
	// per inner request, with its method and path.
	if a, isIP, err := parseHostLiteral(host); err != nil || (isIP && p.addrs.check(a) != nil) {
		er := Request{Caller: caller, Scheme: "https", Method: http.MethodConnect, Host: host, Port: port}
		if err == nil {
			err = p.addrs.check(a)
		}
		writeError(w, p.decideErr(ctx, er, err))
		return
	}
	client, err := hijack(w)
	if err != nil {
		return
	}
	defer client.Close()
	tc := tls.Server(client, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return p.leaves.get(caller.ID, host)
		},
	})
	client.SetDeadline(time.Now().Add(p.cfg.DialTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		p.cfg.Logger.Debug("egress intercept handshake", "host", host, "caller", caller.ID, "err", err)
		return
	}
	client.SetDeadline(time.Time{})
	p.serveIntercepted(ctx, tc, caller, host, port)
}

func (p *Proxy) decideErr(ctx context.Context, er Request, err error) error {
	p.audit(ctx, Event{Time: p.cfg.Now(), Request: er, Outcome: Deny.String(), Reason: err.Error()})
	return &DeniedError{Request: er, Verdict: Deny, Reason: err.Error(), Err: err}
}

// serveIntercepted reads HTTP/1.1 requests from the decrypted client
// connection and sends each through do, to the CONNECT authority.
func (p *Proxy) serveIntercepted(ctx context.Context, conn *tls.Conn, caller Caller, host string, port int) {
	br := bufio.NewReader(conn)
	bw := bufio.NewWriter(conn)
	authority := net.JoinHostPort(host, strconv.Itoa(port))
	if port == 443 {
		authority = host
		if strings.Contains(host, ":") {
			authority = "[" + host + "]"
		}
	}
	for {
		conn.SetReadDeadline(time.Now().Add(90 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		conn.SetReadDeadline(time.Time{})
		req.URL.Scheme = "https"
		req.URL.Host = authority // the CONNECT target, not the Host header
		req.RequestURI = ""
		er, err := describe(caller, req)
		var resp *http.Response
		if err == nil {
			resp, err = p.do(ctx, er, req.WithContext(ctx))
		}
		if err != nil {
			resp = errorResponse(req, err)
			resp.Close = true
		}
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
		removeHopHeaders(resp.Header)
		resp.TransferEncoding = nil
		if resp.ContentLength < 0 {
			resp.TransferEncoding = []string{"chunked"}
		}
		werr := resp.Write(bw)
		resp.Body.Close()
		if werr == nil {
			werr = bw.Flush()
		}
		// Drain what the client sent so the next request parses.
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		if werr != nil || resp.Close || req.Close {
			return
		}
	}
}

func hijack(w http.ResponseWriter) (net.Conn, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "CONNECT unsupported by this server", http.StatusInternalServerError)
		return nil, errors.New("response writer cannot hijack")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack: %w", err)
	}
	if rw.Reader.Buffered() > 0 {
		// The client spoke before the 200; not supported.
		conn.Close()
		return nil, errors.New("client sent data before CONNECT reply")
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection Established\r\n\r\n")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write CONNECT reply: %w", err)
	}
	return conn, nil
}

func tunnel(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}
