// Package serverlimits holds the HTTP server settings and the listener
// wrapper that keep hostile clients from starving others before a request
// reaches the gateway: a cap on open connections per client address (IPv6
// by /64) and in total, header read timeouts against slowloris, a header
// size cap against header floods, idle timeouts, and HTTP/2 stream limits.
// The daemon applies them to its http.Server and wraps its listener; this
// package starts nothing itself.
package serverlimits

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
)

// Settings are the server's limits.
type Settings struct {
	// MaxConnsPerIP and MaxConns cap open connections (0 = no cap).
	MaxConnsPerIP, MaxConns int
	// ReadHeaderTimeout bounds reading headers (and the TLS handshake);
	// ReadTimeout and WriteTimeout bound a whole request; IdleTimeout
	// closes idle keep-alive connections.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers; larger ones are answered 431.
	MaxHeaderBytes int
	// MaxConcurrentStreams caps HTTP/2 streams per connection.
	MaxConcurrentStreams int
}

// FromConfig builds settings from the gateway's server section and the
// daemon's request timeouts.
func FromConfig(c config.ServerLimits, readTimeout, writeTimeout time.Duration) Settings {
	return Settings{
		MaxConnsPerIP: c.MaxConnsPerIP, MaxConns: c.MaxConns,
		ReadHeaderTimeout: c.ReadHeaderTimeout.D(), ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: c.IdleTimeout.D(), MaxHeaderBytes: c.MaxHeaderBytes, MaxConcurrentStreams: c.MaxConcurrentStreams,
	}
}

// Apply sets the timeouts, the header cap and the HTTP/2 limits on srv.
func (s Settings) Apply(srv *http.Server) {
	srv.ReadHeaderTimeout = s.ReadHeaderTimeout
	srv.ReadTimeout = s.ReadTimeout
	srv.WriteTimeout = s.WriteTimeout
	srv.IdleTimeout = s.IdleTimeout
	srv.MaxHeaderBytes = s.MaxHeaderBytes
	if srv.HTTP2 == nil {
		srv.HTTP2 = &http.HTTP2Config{}
	}
	srv.HTTP2.MaxConcurrentStreams = s.MaxConcurrentStreams
	// Bound what one HTTP/2 connection can make the server decode and
	// buffer, as the header cap does for HTTP/1.
	srv.HTTP2.MaxDecoderHeaderTableSize = 4096
	srv.HTTP2.MaxReadFrameSize = 1 << 20
	srv.HTTP2.MaxReceiveBufferPerStream = 1 << 20
	srv.HTTP2.MaxReceiveBufferPerConnection = 4 << 20
}

// Listener caps open connections per client address and in total. A
// connection over a cap is closed as soon as it is accepted (with a reset,
// so it costs the server nothing more); the others proceed. It sits below
// TLS: the server's TLS handshake runs on the connections it lets through.
type Listener struct {
	net.Listener
	perIP, max int

	mu    sync.Mutex // protects byIP, open
	byIP  map[netip.Prefix]int
	open  int
	shed  atomic.Uint64
	total atomic.Uint64
}

// Wrap limits ln with s's connection caps.
func (s Settings) Wrap(ln net.Listener) *Listener {
	return &Listener{Listener: ln, perIP: s.MaxConnsPerIP, max: s.MaxConns, byIP: map[netip.Prefix]int{}}
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// OpenFrom is the number of connections open from addr's client (its /64
// for IPv6).
func (l *Listener) OpenFrom(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byIP[clientOf(addr)]
}

// Shed is how many connections were closed for being over a cap.
func (l *Listener) Shed() uint64 { return l.shed.Load() }

// Accepted is how many connections were let through.
func (l *Listener) Accepted() uint64 { return l.total.Load() }

// clientOf groups addresses by client: an IPv4 address, or an IPv6 /64.
func clientOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	p, _ := a.Prefix(32)
	return p
}

func addrOf(na net.Addr) netip.Addr {
	if ta, ok := na.(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a
		}
	}
	if ap, err := netip.ParseAddrPort(na.String()); err == nil {
		return ap.Addr()
	}
	return netip.IPv4Unspecified()
}

// Accept returns the next connection within the caps.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(addrOf(c.RemoteAddr()))
		l.mu.Lock()
		over := l.perIP > 0 && l.byIP[client] >= l.perIP || l.max > 0 && l.open >= l.max
		if !over {
			l.byIP[client]++
			l.open++
		}
		l.mu.Unlock()
		if over {
			l.shed.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		l.total.Add(1)
		return &conn{Conn: c, l: l, client: client}, nil
	}
}

type conn struct {
	net.Conn
	l      *Listener
	client netip.Prefix
	once   sync.Once
}

// Close releases the connection's place under the caps.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		defer c.l.mu.Unlock()
		c.l.open--
		if c.l.byIP[c.client]--; c.l.byIP[c.client] <= 0 {
			delete(c.l.byIP, c.client)
		}
	})
	return err
}
