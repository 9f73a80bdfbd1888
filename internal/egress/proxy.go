package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

// Proxy is the egress proxy. It is an http.Handler (the forward proxy) and
// offers Do for in-process callers. Create with New; Close releases idle
// upstream connections.
type Proxy struct {
	cfg   Config
	addrs addrPolicy

	base *http.Transport // shared by callers without a client certificate
	// private carries requests with a private grant, so a connection to a
	// private address is never reused by a request without one.
	private *http.Transport

	protected atomic.Pointer[[]netip.AddrPort] // the daemon's own listeners (Protect)

	mu         sync.Mutex                 // protects transports
	transports map[string]*http.Transport // caller ID → transport with client cert

	leaves *leafCache // nil without interception
	met    *metrics   // nil: no metrics
}

var _ http.Handler = (*Proxy)(nil)

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	cfg = cfg.withDefaults()
	if (cfg.InterceptCA == nil) != (cfg.InterceptKey == nil) {
		return nil, errors.New("new egress proxy: InterceptCA and InterceptKey go together")
	}
	for name, a := range cfg.LoopbackHosts {
		if !a.Unmap().IsLoopback() || name != strings.ToLower(strings.TrimSuffix(name, ".")) {
			return nil, fmt.Errorf("new egress proxy: loopback host %q at %s: want a lower-case name and a loopback address", name, a)
		}
	}
	p := &Proxy{
		cfg:        cfg,
		addrs:      addrPolicy{allowLoopback: cfg.UnsafeAllowLoopback, extra: cfg.DenyPrefixes},
		transports: make(map[string]*http.Transport),
	}
	if cfg.InterceptCA != nil {
		lc, err := newLeafCache(cfg.InterceptCA, cfg.InterceptKey, cfg.LeafTTL, cfg.Now)
		if err != nil {
			return nil, fmt.Errorf("new egress proxy: %w", err)
		}
		p.leaves = lc
	}
	p.base = p.newTransport(nil)
	p.private = p.newTransport(nil)
	var err error
	if p.met, err = newMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("new egress proxy: metrics: %w", err)
	}
	return p, nil
}

// Close closes idle upstream connections.
func (p *Proxy) Close() error {
	p.base.CloseIdleConnections()
	p.private.CloseIdleConnections()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
	return nil
}

// ForgetCaller drops the upstream transport (and its idle connections)
// kept for caller's client certificate; call it when a session ends.
func (p *Proxy) ForgetCaller(callerID string) {
	p.mu.Lock()
	t, ok := p.transports[callerID]
	delete(p.transports, callerID)
	p.mu.Unlock()
	if ok {
		t.CloseIdleConnections()
	}
}

func (p *Proxy) newTransport(cert *tls.Certificate) *http.Transport {
	tc := &tls.Config{RootCAs: p.cfg.UpstreamRoots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Transport{
		Proxy:                 nil, // never chain to an environment proxy
		DialContext:           p.dial,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   p.cfg.DialTimeout,
		ResponseHeaderTimeout: p.cfg.Timeout,
	}
}

// transportFor returns the transport carrying caller's client certificate,
// or the shared one. Requests with a private grant (platform calls, which
// present no client certificate) have a transport of their own.
func (p *Proxy) transportFor(ctx context.Context, caller Caller) (*http.Transport, error) {
	if granted(ctx) {
		return p.private, nil
	}
	if p.cfg.ClientCert == nil {
		return p.base, nil
	}
	cert, err := p.cfg.ClientCert(ctx, caller)
	if err != nil {
		return nil, fmt.Errorf("client certificate for %s: %w", caller.ID, err)
	}
	if cert == nil {
		return p.base, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.transports[caller.ID]
	if ok && sameLeaf(t, cert) {
		return t, nil
	}
	if ok {
		t.CloseIdleConnections()
	}
	t = p.newTransport(cert)
	p.transports[caller.ID] = t
	return t, nil
}

func sameLeaf(t *http.Transport, cert *tls.Certificate) bool {
	cur, err := t.TLSClientConfig.GetClientCertificate(nil)
	return err == nil && len(cur.Certificate) > 0 && len(cert.Certificate) > 0 &&
		string(cur.Certificate[0]) == string(cert.Certificate[0])
}

// resolve returns the addresses host:port may be dialled at. A name is
// refused if any of its addresses is refused, so a record set mixing public
// and private addresses cannot be used to reach the private one. A private
// grant (granted(ctx)) opens the private ranges; the protected listeners
// stay closed.
func (p *Proxy) resolve(ctx context.Context, host string, port int) ([]netip.Addr, error) {
	private := granted(ctx)
	a, isIP, err := parseHostLiteral(host)
	if err != nil {
		return nil, err
	}
	if isIP {
		if err := p.checkAddr(a, port, private); err != nil {
			return nil, err
		}
		return []netip.Addr{a}, nil
	}
	if a, ok := p.cfg.LoopbackHosts[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
		if err := p.checkProtected(a, port); err != nil {
			return nil, fmt.Errorf("host %s resolves to %w", host, err)
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") || strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".localhost") {
		if !p.addrs.allowLoopback && !private {
			return nil, fmt.Errorf("host %s: %w", host, ErrForbiddenAddress)
		}
	}
	addrs, err := p.cfg.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, a := range addrs {
		if err := p.checkAddr(a, port, private); err != nil {
			return nil, fmt.Errorf("host %s resolves to %w", host, err)
		}
	}
	return addrs, nil
}

// dial resolves addr's host itself and connects to a checked IP.
func (p *Proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	pn, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("dial %s: port: %w", addr, err)
	}
	addrs, err := p.resolve(ctx, host, pn)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("dial %s: %w", addr, firstErr)
}

// describe builds the Decider request for an outbound HTTP request.
func describe(caller Caller, req *http.Request) (Request, error) {
	u := req.URL
	if u == nil || !u.IsAbs() || u.Host == "" {
		return Request{}, fmt.Errorf("url %v is not absolute: %w", u, ErrBadRequest)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return Request{}, fmt.Errorf("scheme %q: %w", u.Scheme, ErrBadRequest)
	}
	if u.User != nil {
		return Request{}, fmt.Errorf("userinfo in url: %w", ErrBadRequest)
	}
	host := strings.ToLower(u.Hostname())
	port := 80
	if scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return Request{}, fmt.Errorf("port %q: %w", ps, ErrBadRequest)
		}
		port = n
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	wait, err := parseApprovalWait(req.Header.Get(ApprovalWaitHeader))
	if err != nil {
		return Request{}, err
	}
	return Request{Caller: caller, Scheme: scheme, Method: method, Host: host, Port: port, Path: u.EscapedPath(),
		ApprovalWait: wait}, nil
}

// parseApprovalWait reads ApprovalWaitHeader: seconds, at most
// MaxApprovalWait; empty means zero.
func parseApprovalWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f < 0 || f > MaxApprovalWait.Seconds() || f != f {
		return 0, fmt.Errorf("%s: %q: want seconds between 0 and %.0f: %w", ApprovalWaitHeader, v, MaxApprovalWait.Seconds(), ErrBadRequest)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// decide applies the address rules that need no DNS (with the request's
// private grant, if any), then the Decider, and audits refusals. It
// returns nil if the request may proceed.
func (p *Proxy) decide(ctx context.Context, er Request) error {
	start := p.cfg.Now()
	deny := func(v Verdict, reason string, cause error) error {
		p.audit(ctx, Event{Time: start, Request: er, Outcome: v.String(), Reason: reason})
		return &DeniedError{Request: er, Verdict: v, Reason: reason, Err: cause}
	}
	if a, isIP, err := parseHostLiteral(er.Host); err != nil {
		return deny(Deny, err.Error(), err)
	} else if isIP {
		if err := p.checkAddr(a, er.Port, granted(ctx)); err != nil {
			return deny(Deny, err.Error(), err)
		}
	}
	if p.cfg.Decider == nil {
		return deny(Deny, "no decider configured", nil)
	}
	d, err := p.cfg.Decider.DecideEgress(ctx, er)
	if err != nil {
		p.cfg.Logger.Warn("egress decider failed", "host", er.Host, "caller", er.Caller.ID, "err", err)
		return deny(Deny, "decider error: "+err.Error(), err)
	}
	if d.Verdict != Allow {
		return deny(d.Verdict, d.Reason, nil)
	}
	return nil
}

func (p *Proxy) audit(ctx context.Context, ev Event) {
	p.met.event(ev)
	if p.cfg.Auditor != nil {
		p.cfg.Auditor.Audit(ctx, ev)
	}
}

// Do sends req on behalf of caller. req.URL must be absolute (http or
// https). On success the caller must close the response body; the body is
// limited to MaxResponseBytes and the whole exchange to Timeout. Refusals
// return a *DeniedError wrapping ErrDenied or ErrPendingApproval.
func (p *Proxy) Do(ctx context.Context, caller Caller, req *http.Request) (*http.Response, error) {
	er, err := describe(caller, req)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	return p.do(ctx, er, req)
}

func (p *Proxy) do(ctx context.Context, er Request, req *http.Request) (_ *http.Response, err error) {
	start := p.cfg.Now()
	ctx, span := telemetry.StartClient(ctx, "egress.request", "http.request.method", er.Method, "server.address", er.Host, "agentcloud.egress.purpose", string(er.Caller.Purpose))
	defer func() { telemetry.End(span, err) }()
	if p.cfg.AllowPrivate != nil && p.cfg.AllowPrivate(ctx, er) {
		ctx = context.WithValue(ctx, privateKey{}, true)
	} else if granted(ctx) {
		ctx = context.WithValue(ctx, privateKey{}, false) // only AllowPrivate grants
	}
	if err := p.decide(ctx, er); err != nil {
		return nil, err
	}
	fail := func(err error) (*http.Response, error) {
		p.audit(ctx, Event{Time: start, Request: er, Outcome: "error", Reason: err.Error(), Duration: p.cfg.Now().Sub(start)})
		return nil, fmt.Errorf("egress %s %s: %w", er.Method, er.Host, err)
	}
	if req.ContentLength > p.cfg.MaxRequestBytes {
		return fail(fmt.Errorf("request body %d bytes > %d: %w", req.ContentLength, p.cfg.MaxRequestBytes, ErrTooLarge))
	}
	timeout := p.cfg.Timeout
	if d := er.Caller.Timeout; d > 0 {
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	out := req.Clone(ctx)
	out.RequestURI = ""
	out.Host = "" // the URL's host decides; a Host header cannot redirect the request
	removeHopHeaders(out.Header)
	out.Header.Del(ApprovalWaitHeader)
	telemetry.Inject(ctx, out.Header) // the destination continues the trace of the egress span
	if req.Body != nil && req.Body != http.NoBody {
		out.Body = &limitedBody{rc: req.Body, n: p.cfg.MaxRequestBytes, count: p.met.counter(true)}
	}
	var sub Substitution
	if p.cfg.Secrets != nil {
		s, err := p.cfg.Secrets(ctx, er.Caller, er, out.Header)
		if err != nil {
			cancel()
			p.audit(ctx, Event{Time: start, Request: er, Outcome: Deny.String(), Reason: "secrets: " + err.Error()})
			return nil, &DeniedError{Request: er, Verdict: Deny, Reason: "secrets: " + err.Error(), Err: err}
		}
		sub = s
		if f := er.Caller.Substituted; f != nil && len(s.Names) > 0 {
			f(s)
		}
	}
	if sub.Scrubber != nil {
		// The transport then asks for gzip itself and decodes it, so the
		// body is scrubbed as it was written, not in a compressed form.
		out.Header.Del("Accept-Encoding")
	}
	if p.cfg.Sign != nil {
		if err := p.cfg.Sign(ctx, er.Caller, out); err != nil {
			cancel()
			return fail(fmt.Errorf("sign: %w", err))
		}
	}
	t, err := p.transportFor(ctx, er.Caller)
	if err != nil {
		cancel()
		return fail(err)
	}
	resp, err := t.RoundTrip(out)
	if err != nil {
		cancel()
		if errors.Is(err, ErrForbiddenAddress) {
			p.audit(ctx, Event{Time: start, Request: er, Outcome: Deny.String(), Reason: err.Error()})
			return nil, &DeniedError{Request: er, Verdict: Deny, Reason: err.Error(), Err: err}
		}
		return fail(err)
	}
	if resp.ContentLength > p.cfg.MaxResponseBytes {
		resp.Body.Close()
		cancel()
		return fail(fmt.Errorf("response body %d bytes > %d: %w", resp.ContentLength, p.cfg.MaxResponseBytes, ErrTooLarge))
	}
	if sc := sub.Scrubber; sc != nil {
		if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
			resp.Body.Close()
			cancel()
			return fail(fmt.Errorf("the response to a request carrying secrets is encoded (%s) and cannot be scrubbed of them", ce))
		}
		sc.Header(resp.Header)
		if resp.ContentLength != 0 {
			// Scrubbing changes lengths; the body goes out chunked. (A
			// known-empty body, as in a 204, stays as it is.)
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
		}
	}
	resp.Body = &limitedBody{rc: resp.Body, n: p.cfg.MaxResponseBytes, done: cancel, count: p.met.counter(false)}
	if sc := sub.Scrubber; sc != nil {
		resp.Body = sc.Reader(resp.Body, func() { sc.Header(resp.Trailer) })
	}
	p.audit(ctx, Event{Time: start, Request: er, Outcome: Allow.String(), Secrets: sub.Names, Status: resp.StatusCode, Duration: p.cfg.Now().Sub(start)})
	return resp, nil
}

// limitedBody fails a read once more than n bytes have passed; count, if
// set, adds the bytes read.
type limitedBody struct {
	rc    io.ReadCloser
	n     int64
	done  func()
	once  sync.Once
	count prometheus.Counter
}

func (b *limitedBody) Read(buf []byte) (int, error) {
	if b.n < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(buf)) > b.n+1 {
		buf = buf[:b.n+1]
	}
	n, err := b.rc.Read(buf)
	b.n -= int64(n)
	if b.count != nil && n > 0 {
		b.count.Add(float64(n))
	}
	if b.n < 0 {
		return n - int(-b.n), fmt.Errorf("body: %w", ErrTooLarge)
	}
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.rc.Close()
	if b.done != nil {
		b.once.Do(b.done)
	}
	return err
}

var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}
