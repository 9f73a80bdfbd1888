package egress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is an Auditor that keeps events.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) Audit(_ context.Context, ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) last(t *testing.T) Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.evs) == 0 {
		t.Fatal("no audit events")
	}
	return r.evs[len(r.evs)-1]
}

func allowAll() Decider {
	return DeciderFunc(func(context.Context, Request) (Decision, error) { return Decision{Verdict: Allow}, nil })
}

// fakeResolver maps names to fixed addresses and never touches the network.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[strings.TrimSuffix(host, ".")]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func newTestCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test intercept CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func startProxy(t testing.TB, p *Proxy) *url.URL {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func proxyClient(proxyURL *url.URL, roots *x509.CertPool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(proxyURL),
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}
}

func echoServer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
		w.Header().Set("X-Seen-Proxy-Auth", r.Header.Get("Proxy-Authorization"))
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			w.Header().Set("X-Client-Cert", r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
	})
}

func TestDefaultDeny(t *testing.T) {
	up := httptest.NewServer(echoServer())
	defer up.Close()
	rec := &recorder{}
	p, err := New(Config{Auditor: rec, UnsafeAllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := proxyClient(startProxy(t, p), nil).Get(up.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(StatusHeader) != "denied" {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get(StatusHeader))
	}
	if ev := rec.last(t); ev.Outcome != "denied" || ev.Request.Host != "127.0.0.1" {
		t.Fatalf("event %+v", ev)
	}
	req, _ := http.NewRequest("GET", up.URL, nil)
	if _, err := p.Do(context.Background(), Caller{ID: "c"}, req); !errors.Is(err, ErrDenied) {
		t.Fatalf("Do err = %v", err)
	}
}

func TestForwardHTTPAllowedWithSecrets(t *testing.T) {
	up := httptest.NewServer(echoServer())
	defer up.Close()
	rec := &recorder{}
	var seen Request
	p, _ := New(Config{
		Auditor:             rec,
		UnsafeAllowLoopback: true,
		Identify: func(r *http.Request) (Caller, error) {
			if r.Header.Get("Proxy-Authorization") != "Bearer sess-1" {
				return Caller{}, errors.New("no")
			}
			return Caller{ID: "spiffe://agentcloud.local/agent/a/session/s1"}, nil
		},
		Decider: DeciderFunc(func(_ context.Context, r Request) (Decision, error) {
			seen = r
			return Decision{Verdict: Allow}, nil
		}),
		Secrets: func(_ context.Context, c Caller, r Request, h http.Header) (Substitution, error) {
			if v := h.Get("Authorization"); v == "Bearer {{secret:TOKEN}}" && r.Host == "127.0.0.1" && r.Scheme == "http" && r.Port > 0 {
				h.Set("Authorization", "Bearer s3cret")
				return Substitution{Names: []string{"TOKEN"}}, nil
			}
			return Substitution{}, nil
		},
	})
	pu := startProxy(t, p)
	pu.User = nil
	c := proxyClient(pu, nil)
	c.Transport.(*http.Transport).ProxyConnectHeader = nil
	req, _ := http.NewRequest("POST", up.URL+"/path", strings.NewReader("body"))
	req.Header.Set("Authorization", "Bearer {{secret:TOKEN}}")
	// Without proxy credentials: 407.
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c.Transport.(*http.Transport).Proxy = func(r *http.Request) (*url.URL, error) {
		r.Header.Set("Proxy-Authorization", "Bearer sess-1")
		return pu, nil
	}
	req, _ = http.NewRequest("POST", up.URL+"/path", strings.NewReader("body"))
	req.Header.Set("Authorization", "Bearer {{secret:TOKEN}}")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "POST /path body" {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
	if resp.Header.Get("X-Seen-Auth") != "Bearer s3cret" || resp.Header.Get("X-Seen-Proxy-Auth") != "" {
		t.Fatalf("upstream saw auth %q proxy-auth %q", resp.Header.Get("X-Seen-Auth"), resp.Header.Get("X-Seen-Proxy-Auth"))
	}
	if seen.Method != "POST" || seen.Host != "127.0.0.1" || seen.Path != "/path" || seen.Caller.ID == "" {
		t.Fatalf("decider saw %+v", seen)
	}
	ev := rec.last(t)
	if ev.Outcome != "allowed" || ev.Status != 200 || len(ev.Secrets) != 1 || ev.Secrets[0] != "TOKEN" {
		t.Fatalf("event %+v", ev)
	}
}

func TestPendingApproval(t *testing.T) {
	up := httptest.NewServer(echoServer())
	defer up.Close()
	p, _ := New(Config{UnsafeAllowLoopback: true, Decider: DeciderFunc(func(context.Context, Request) (Decision, error) {
		return Decision{Verdict: Pending, Reason: "lethal-trifecta"}, nil
	})})
	req, _ := http.NewRequest("GET", up.URL, nil)
	_, err := p.Do(context.Background(), Caller{ID: "s"}, req)
	var de *DeniedError
	if !errors.Is(err, ErrPendingApproval) || !errors.As(err, &de) || de.Reason != "lethal-trifecta" {
		t.Fatalf("err = %v", err)
	}
	resp, err := proxyClient(startProxy(t, p), nil).Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get(StatusHeader) != "pending" {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get(StatusHeader))
	}
}

// ssrfHosts are refused by the address rules; TestSSRF and FuzzParseHost
// share them.
var ssrfHosts = []string{
	"127.0.0.1", "127.8.9.10", "[::1]", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
	"100.64.0.1", "100.127.255.254", "169.254.169.254", "169.254.0.1", "224.0.0.1", "239.1.1.1",
	"0.0.0.0", "255.255.255.255", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:10.0.0.1]",
	"[fc00::1]", "[fd12:3456::1]", "[fe80::1]", "[ff02::1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::1]",
	"[::127.0.0.1]",
	"2130706433", "0177.0.0.1", "0x7f.1", "0x7f000001", "127.1", "017700000001", "0x7f.0.0.1",
	"1.2.3", "127.0.0.1.", "localhost", "foo.localhost",
	"loopback.test", "meta.test", "private.test", "mixed.test", "mapped.test", "ula.test",
}

func TestSSRF(t *testing.T) {
	res := fakeResolver{
		"loopback.test": addrs("127.0.0.1"),
		"meta.test":     addrs("169.254.169.254"),
		"private.test":  addrs("10.0.0.7"),
		"mixed.test":    addrs("93.184.216.34", "192.168.1.1"),
		"mapped.test":   addrs("::ffff:127.0.0.1"),
		"ula.test":      addrs("fd00:ec2::254"),
	}
	p, _ := New(Config{Decider: allowAll(), Resolver: res, DialTimeout: time.Second})
	hosts := ssrfHosts
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+h+":8080/", nil)
			resp, err := p.Do(context.Background(), Caller{ID: "s"}, req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("allowed")
			}
			if !errors.Is(err, ErrDenied) || !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("err = %v, want ErrDenied and ErrForbiddenAddress", err)
			}
		})
	}
	// Public addresses pass the address rules (checked without dialling).
	for _, a := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1", "::ffff:8.8.8.8", "172.32.0.1", "100.128.0.1"} {
		if err := p.addrs.check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	// The test-only loopback switch opens loopback and nothing else.
	lp, _ := New(Config{Decider: allowAll(), UnsafeAllowLoopback: true})
	if lp.addrs.check(netip.MustParseAddr("127.0.0.1")) != nil || lp.addrs.check(netip.MustParseAddr("10.0.0.1")) == nil ||
		lp.addrs.check(netip.MustParseAddr("169.254.169.254")) == nil {
		t.Fatal("UnsafeAllowLoopback scope wrong")
	}
	// DenyPrefixes extends the list.
	dp, _ := New(Config{DenyPrefixes: []netip.Prefix{netip.MustParsePrefix("93.184.216.0/24")}})
	if dp.addrs.check(netip.MustParseAddr("93.184.216.34")) == nil {
		t.Fatal("DenyPrefixes ignored")
	}
}

func TestInetAton(t *testing.T) {
	tests := map[string]string{
		"2130706433": "127.0.0.1", "0177.0.0.1": "127.0.0.1", "0x7f.1": "127.0.0.1",
		"127.1": "127.0.0.1", "0x7f.0x0.0.01": "127.0.0.1", "10.0x10000": "10.1.0.0", "0": "0.0.0.0",
	}
	for in, want := range tests {
		a, ok := inetAton(in)
		if !ok || a.String() != want {
			t.Errorf("inetAton(%q) = %v, %v; want %s", in, a, ok, want)
		}
	}
	for _, in := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "0x", "1..2", "08.1.1.1", "4294967296"} {
		if a, ok := inetAton(in); ok && in != "0x" {
			t.Errorf("inetAton(%q) = %v, want not numeric", in, a)
		}
	}
}

func TestConnectIntercept(t *testing.T) {
	up := httptest.NewUnstartedServer(echoServer())
	up.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	up.StartTLS()
	defer up.Close()
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())

	caCert, caKey := newTestCA(t)
	clientCA, clientKey := newTestCA(t)
	_ = clientCA
	rec := &recorder{}
	var seen []Request
	var mu sync.Mutex
	p, err := New(Config{
		Auditor: rec, UnsafeAllowLoopback: true,
		InterceptCA: caCert, InterceptKey: caKey, UpstreamRoots: upRoots,
		Decider: DeciderFunc(func(_ context.Context, r Request) (Decision, error) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
			if r.Path == "/blocked" {
				return Decision{Verdict: Deny, Reason: "path"}, nil
			}
			return Decision{Verdict: Allow}, nil
		}),
		Secrets: func(_ context.Context, _ Caller, _ Request, h http.Header) (Substitution, error) {
			if h.Get("Authorization") == "{{secret:K}}" {
				h.Set("Authorization", "real-key")
				return Substitution{Names: []string{"K"}}, nil
			}
			return Substitution{}, nil
		},
		ClientCert: func(_ context.Context, c Caller) (*tls.Certificate, error) {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: c.ID},
				NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, clientCA, clientKey.Public(), clientKey)
			if err != nil {
				return nil, err
			}
			return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: clientKey}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	pu := startProxy(t, p)
	c := proxyClient(pu, roots)
	req, _ := http.NewRequest("GET", up.URL+"/hello", nil)
	req.Header.Set("Authorization", "{{secret:K}}")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "GET /hello " {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
	if resp.Header.Get("X-Seen-Auth") != "real-key" {
		t.Fatalf("secret not substituted: %q", resp.Header.Get("X-Seen-Auth"))
	}
	if resp.Header.Get("X-Client-Cert") != "anonymous" {
		t.Fatalf("upstream client cert = %q", resp.Header.Get("X-Client-Cert"))
	}
	leaf := resp.TLS.PeerCertificates[0]
	if leaf.Issuer.CommonName != "test intercept CA" || leaf.Subject.OrganizationalUnit[0] != "anonymous" {
		t.Fatalf("leaf issuer %q ou %v", leaf.Issuer.CommonName, leaf.Subject.OrganizationalUnit)
	}
	// Second request on the same tunnel is decided on its own.
	resp, err = c.Get(up.URL + "/blocked")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get(StatusHeader) != "denied" {
		t.Fatalf("blocked: %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0].Method != "GET" || seen[0].Scheme != "https" || seen[0].Path != "/hello" {
		t.Fatalf("decider saw %+v", seen)
	}
	// A client that does not trust the intercept CA fails.
	if _, err := proxyClient(pu, upRoots).Get(up.URL + "/hello"); err == nil {
		t.Fatal("client accepted interception leaf without trusting the CA")
	}
}

func TestConnectTunnel(t *testing.T) {
	up := httptest.NewTLSServer(echoServer())
	defer up.Close()
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	rec := &recorder{}
	var allowed atomic.Bool
	allowed.Store(true)
	p, _ := New(Config{Auditor: rec, UnsafeAllowLoopback: true, Decider: DeciderFunc(func(_ context.Context, r Request) (Decision, error) {
		if r.Method != http.MethodConnect || r.Scheme != "tunnel" || !allowed.Load() {
			return Decision{}, nil
		}
		return Decision{Verdict: Allow}, nil
	})})
	c := proxyClient(startProxy(t, p), roots)
	resp, err := c.Get(up.URL + "/t")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "GET /t " {
		t.Fatalf("body %q", b)
	}
	allowed.Store(false)
	c.CloseIdleConnections()
	if _, err := c.Get(up.URL + "/t"); err == nil {
		t.Fatal("tunnel allowed after deny")
	}
	if rec.last(t).Outcome != "denied" {
		t.Fatalf("event %+v", rec.last(t))
	}
}

func TestLimits(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Length", "5000")
			io.WriteString(w, strings.Repeat("x", 5000))
		case "/bigchunked":
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("x", 5000))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		default:
			io.Copy(io.Discard, r.Body)
		}
	}))
	defer up.Close()
	p, _ := New(Config{Decider: allowAll(), UnsafeAllowLoopback: true, MaxResponseBytes: 1000, MaxRequestBytes: 1000, Timeout: 100 * time.Millisecond})
	ctx := context.Background()
	req, _ := http.NewRequest("GET", up.URL+"/big", nil)
	if _, err := p.Do(ctx, Caller{}, req); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big response err = %v", err)
	}
	req, _ = http.NewRequest("GET", up.URL+"/bigchunked", nil)
	resp, err := p.Do(ctx, Caller{}, req)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("chunked response err = %v", err)
	}
	req, _ = http.NewRequest("POST", up.URL+"/", strings.NewReader(strings.Repeat("y", 2000)))
	if _, err := p.Do(ctx, Caller{}, req); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big request err = %v", err)
	}
	req, _ = http.NewRequest("GET", up.URL+"/slow", nil)
	if _, err := p.Do(ctx, Caller{}, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow err = %v", err)
	}
	resp, err = proxyClient(startProxy(t, p), nil).Get(up.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("slow via proxy: %d", resp.StatusCode)
	}
	for _, bad := range []string{"ftp://example.com/", "/relative", "http://user:pw@example.com/"} {
		req, _ := http.NewRequest("GET", bad, nil)
		if _, err := p.Do(ctx, Caller{}, req); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func FuzzParseHost(f *testing.F) {
	for _, h := range ssrfHosts {
		f.Add(strings.Trim(h, "[]"))
	}
	f.Add("example.com")
	f.Add("8.8.8.8")
	ap := addrPolicy{}
	f.Fuzz(func(t *testing.T, host string) {
		a, isIP, err := parseHostLiteral(host)
		// A numeric form is either a canonical IP literal or refused.
		if _, numeric := inetAton(strings.TrimSuffix(host, ".")); numeric && err == nil && !(isIP && a.String() == host) {
			t.Fatalf("numeric host %q accepted as name", host)
		}
		if isIP {
			if err != nil {
				t.Fatalf("%q: isIP with error", host)
			}
			// Mapped and embedded forms are judged like the address they carry.
			if a.Is4In6() && (ap.check(a) == nil) != (ap.check(a.Unmap()) == nil) {
				t.Fatalf("%q: mapped form judged differently", host)
			}
		}
	})
}

func TestParseApprovalWait(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "0": 0, "30": 30 * time.Second, " 1.5 ": 1500 * time.Millisecond, "300": MaxApprovalWait} {
		if got, err := parseApprovalWait(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "301", "NaN", "Inf", "1s", "x"} {
		if _, err := parseApprovalWait(in); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: want ErrBadRequest, got %v", in, err)
		}
	}
}

func FuzzParseApprovalWait(f *testing.F) {
	for _, s := range []string{"", "0", "30", "1.5", "-1", "301", "NaN", "1e2", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseApprovalWait(s)
		if err == nil && (d < 0 || d > MaxApprovalWait) {
			t.Fatalf("%q: %v accepted", s, d)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("%q: %v", s, err)
		}
	})
}

// TestCallerTimeoutLetsAStreamRun: a response that keeps streaming past
// Config.Timeout is cut, unless the caller raised the bound for its
// exchange with Caller.Timeout.
func TestCallerTimeoutLetsAStreamRun(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 4 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(60 * time.Millisecond)
		}
	}))
	defer up.Close()
	p, _ := New(Config{Decider: allowAll(), UnsafeAllowLoopback: true, Timeout: 100 * time.Millisecond})
	read := func(c Caller) (string, error) {
		req, _ := http.NewRequest("GET", up.URL, nil)
		resp, err := p.Do(context.Background(), c, req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if _, err := read(Caller{}); err == nil {
		t.Fatal("a stream longer than Config.Timeout was not cut")
	}
	body, err := read(Caller{Timeout: 5 * time.Second})
	if err != nil || strings.Count(body, "data:") != 4 {
		t.Fatalf("with Caller.Timeout: %q %v", body, err)
	}
}
