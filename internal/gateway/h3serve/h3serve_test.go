package h3serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/agentcloud/agentcloud/internal/gateway/serverlimits"
)

// selfSigned returns a server config for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: []string{"h2", "http/1.1"}}, pool
}

// start serves a handler that names the protocol on TCP (httptest) and
// HTTP/3 at the same port.
func start(t *testing.T, limits serverlimits.Settings) (*Server, *httptest.Server, *x509.CertPool) {
	t.Helper()
	tlsCfg, pool := selfSigned(t)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) }))
	ts.TLS = tlsCfg
	ts.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Listener = ln
	s, err := Start(ts.Config, Config{On: true, Addr: ln.Addr().String(), TLS: tlsCfg, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ts.StartTLS()
	t.Cleanup(func() { ts.Close(); _ = s.Shutdown(context.Background()) })
	return s, ts, pool
}

func h3Client(pool *x509.CertPool) (*http.Client, *http3.Transport) {
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, QUICConfig: &quic.Config{HandshakeIdleTimeout: 5 * time.Second}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestHTTP3BesideTCP: the same handler answers over HTTP/3 at the TCP
// port, TCP responses announce it, and Shutdown frees the UDP port; Start
// without On is a no-op and without TLS an error.
func TestHTTP3BesideTCP(t *testing.T) {
	s, ts, pool := start(t, serverlimits.Settings{})
	c, tr := h3Client(pool)
	defer tr.Close()
	if proto, err := get(c, ts.URL); err != nil || proto != "HTTP/3.0" {
		t.Fatalf("over HTTP/3: %q %v", proto, err)
	}
	resp, err := ts.Client().Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	if got, want := resp.Header.Get("Alt-Svc"), `h3=":`+port+`"; ma=86400`; got != want {
		t.Fatalf("Alt-Svc %q, want %q", got, want)
	}
	addr := s.Addr().String()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP port still held after Shutdown: %v", err)
	}
	pc.Close()
	if s, err := Start(&http.Server{}, Config{}); s != nil || err != nil {
		t.Fatalf("off: %v %v", s, err)
	}
	if _, err := Start(&http.Server{}, Config{On: true, Addr: "127.0.0.1:0"}); err == nil {
		t.Fatal("started without TLS")
	}
}

// TestHTTP3ConnectionCapsClass: MaxConns and MaxConnsPerIP apply to QUIC
// connections: one over the cap is closed, and a slot frees when a
// connection ends.
func TestHTTP3ConnectionCapsClass(t *testing.T) {
	for name, limits := range map[string]serverlimits.Settings{"max_conns": {MaxConns: 1}, "max_conns_per_ip": {MaxConnsPerIP: 1}} {
		t.Run(name, func(t *testing.T) {
			s, ts, pool := start(t, limits)
			c1, tr1 := h3Client(pool)
			if _, err := get(c1, ts.URL); err != nil {
				t.Fatal(err)
			}
			c2, tr2 := h3Client(pool)
			defer tr2.Close()
			if body, err := get(c2, ts.URL); err == nil {
				t.Fatalf("second connection served over the cap: %q", body)
			}
			tr1.Close()
			deadline := time.Now().Add(10 * time.Second)
			for s.ln.open() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			tr2.CloseIdleConnections()
			if _, err := get(c2, ts.URL); err != nil {
				t.Fatalf("after the first closed: %v", err)
			}
		})
	}
}

// TestHTTP3GarbageDatagramsClass: random datagrams, truncated and bogus
// QUIC long headers, oversized ones and empty ones do not stop the server.
func TestHTTP3GarbageDatagramsClass(t *testing.T) {
	s, ts, pool := start(t, serverlimits.Settings{})
	conn, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, p := range garbage() {
		_, _ = conn.Write(p)
	}
	c, tr := h3Client(pool)
	defer tr.Close()
	if proto, err := get(c, ts.URL); err != nil || proto != "HTTP/3.0" {
		t.Fatalf("after garbage: %q %v", proto, err)
	}
}

// garbage is the hostile datagrams both garbage tests send.
func garbage() [][]byte {
	random := func(n int) []byte { b := make([]byte, n); _, _ = rand.Read(b); return b }
	out := [][]byte{{}, {0xc0}, {0xc0, 0, 0, 0, 1}, random(65000)}
	for _, n := range []int{1, 20, 1200, 1500} {
		for range 8 {
			out = append(out, random(n))
			long := random(n)
			long[0] |= 0xc0 // a long header (Initial), version 1, random rest
			if n > 5 {
				copy(long[1:5], []byte{0, 0, 0, 1})
			}
			out = append(out, long)
		}
	}
	return out
}

// TestHTTP3ClientGrouping: QUIC connections count per client as the TCP
// caps count them: an IPv4 address (also when v4-mapped), an IPv6 /64.
func TestHTTP3ClientGrouping(t *testing.T) {
	udp := func(s string) net.Addr { return net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	same := [][2]string{{"10.0.0.1:1", "[::ffff:10.0.0.1]:2"}, {"[2001:db8::1]:1", "[2001:db8::ffff:2]:2"}}
	for _, p := range same {
		if remoteIP(udp(p[0])) != remoteIP(udp(p[1])) {
			t.Errorf("%s and %s count apart", p[0], p[1])
		}
	}
	if remoteIP(udp("[2001:db8:0:1::1]:1")) == remoteIP(udp("[2001:db8:0:2::1]:1")) {
		t.Error("two /64s count together")
	}
}
