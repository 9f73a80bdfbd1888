package serverlimits

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
)

// serve runs an HTTP server with s on a loopback listener and returns its
// address and listener.
func serve(t *testing.T, s Settings, tlsOn bool) (string, *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := s.Wrap(ln)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}
	s.Apply(srv)
	srv.ErrorLog = log.New(io.Discard, "", 0) // handshake timeouts are the point here
	go func() {
		if tlsOn {
			ts := httptest.NewUnstartedServer(nil)
			ts.StartTLS()
			srv.TLSConfig = &tls.Config{Certificates: ts.TLS.Certificates}
			ts.Close()
			_ = srv.ServeTLS(lim, "", "")
			return
		}
		_ = srv.Serve(lim)
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), lim
}

func settings() Settings {
	return Settings{MaxConnsPerIP: 32, MaxConns: 10000, ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		MaxHeaderBytes: 8 << 10, MaxConcurrentStreams: 100}
}

// get does one request from a given local address (127.0.0.x) on a fresh
// connection.
func get(t *testing.T, addr, from string) (int, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// closedByServer waits (up to a generous deadline, not a timing
// assertion) until the server closes c.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestSlowlorisClass: connections that dribble their headers, that send
// nothing, or that never finish a TLS handshake are closed by the server,
// while a normal client is served all along.
func TestSlowlorisClass(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			addr, lim := serve(t, settings(), tlsOn)
			var conns []net.Conn
			for i := 0; i < 20; i++ {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				if i%2 == 0 && !tlsOn {
					_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
				}
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Add(1)
				go func(c net.Conn) { // one header byte every 100ms
					defer wg.Done()
					tick := time.NewTicker(100 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							if _, err := c.Write([]byte("a")); err != nil {
								return
							}
						}
					}
				}(c)
			}
			if !tlsOn {
				if code, err := get(t, addr, "127.0.0.2"); err != nil || code != 200 {
					t.Fatalf("normal client during slowloris: %d %v", code, err)
				}
			}
			for i, c := range conns {
				if !closedByServer(c) {
					t.Fatalf("slow connection %d was not closed by the server", i)
				}
			}
			close(stop)
			wg.Wait()
			for _, c := range conns {
				c.Close()
			}
			if lim.Accepted() == 0 {
				t.Fatal("nothing accepted")
			}
		})
	}
}

// TestConnectionFloodPerIPClass: ten thousand connections from one address
// never hold more than the per-address cap on the server, and a client
// from another address is served during the flood.
func TestConnectionFloodPerIPClass(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	s := settings()
	s.ReadHeaderTimeout = 30 * time.Second // the flood holds its connections open
	addr, lim := serve(t, s, false)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue // shed before the dial returned
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if open := lim.OpenFrom(netip.MustParseAddr("127.0.0.1")); open > s.MaxConnsPerIP {
			t.Fatalf("%d connections open from one address; cap %d", open, s.MaxConnsPerIP)
		}
	}
	if code, err := get(t, addr, "127.0.0.3"); err != nil || code != 200 {
		t.Fatalf("other client during the flood: %d %v", code, err)
	}
	if open := lim.OpenFrom(netip.MustParseAddr("127.0.0.1")); open > s.MaxConnsPerIP {
		t.Fatalf("%d open from the flooder", open)
	}
	// The flood was shed (the listener may not have accepted the last few
	// yet; most must be shed).
	if shed := lim.Shed(); shed < uint64(n/2) {
		t.Fatalf("only %d of %d flood connections shed", shed, n)
	}
	// Closing the flood frees the places.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for i := 0; lim.OpenFrom(netip.MustParseAddr("127.0.0.1")) > 0; i++ {
		if i > 2000 {
			t.Fatalf("places not freed: %d", lim.OpenFrom(netip.MustParseAddr("127.0.0.1")))
		}
		time.Sleep(10 * time.Millisecond) // wait for the server to see the closes; not a timing assertion
	}
	if code, err := get(t, addr, "127.0.0.1"); err != nil || code != 200 {
		t.Fatalf("flooder's address after the flood: %d %v", code, err)
	}
}

func TestTotalConnectionCap(t *testing.T) {
	s := settings()
	s.MaxConnsPerIP, s.MaxConns = 0, 5
	s.ReadHeaderTimeout = 30 * time.Second
	addr, lim := serve(t, s, false)
	var conns []net.Conn
	for i := 0; i < 50; i++ {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}}
		c, err := d.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNRESET) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if lim.Open() > 5 {
		t.Fatalf("%d open, cap 5", lim.Open())
	}
}

// TestHeaderFloodClass: one huge header, many small headers, and a huge
// request line are answered 431 or 414-style errors without taking the
// server down.
func TestHeaderFloodClass(t *testing.T) {
	addr, _ := serve(t, settings(), false)
	many := strings.Repeat("X-A: b\r\n", 5000)
	cases := map[string]string{
		"one huge header":   "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n",
		"many headers":      "GET / HTTP/1.1\r\nHost: x\r\n" + many + "\r\n",
		"huge request line": "GET /" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() { _, _ = io.WriteString(c, raw) }()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d", resp.StatusCode)
			}
		})
	}
	if code, err := get(t, addr, ""); err != nil || code != 200 {
		t.Fatalf("after the flood: %d %v", code, err)
	}
}

func TestApplyAndFromConfig(t *testing.T) {
	c := config.DefaultGateway().Server
	s := FromConfig(c, time.Minute, 2*time.Minute)
	srv := &http.Server{}
	s.Apply(srv)
	if srv.ReadHeaderTimeout != 10*time.Second || srv.ReadTimeout != time.Minute || srv.WriteTimeout != 2*time.Minute ||
		srv.MaxHeaderBytes != 64<<10 || srv.HTTP2 == nil || srv.HTTP2.MaxConcurrentStreams != 250 {
		t.Fatalf("applied %+v %+v", srv, srv.HTTP2)
	}
	if s.MaxConnsPerIP != 256 || s.MaxConns != 16384 {
		t.Fatalf("settings %+v", s)
	}
	if p := clientOf(netip.MustParseAddr("2001:db8::1")); p.String() != "2001:db8::/64" {
		t.Fatalf("ipv6 client %s", p)
	}
}
