package h3serve

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/agentcloud/agentcloud/internal/gateway/serverlimits"
)

// maxUniStreams covers HTTP/3's unidirectional streams (control, QPACK
// encoder and decoder) with room to spare; the client has no use for more.
const maxUniStreams = 8

// quicConfig turns the gateway's server limits into QUIC's: streams per
// connection (MaxConcurrentStreams), idle timeout, handshake timeout
// (ReadHeaderTimeout). 0-RTT stays off: early data can be replayed.
func quicConfig(l serverlimits.Settings) *quic.Config {
	c := &quic.Config{MaxIncomingUniStreams: maxUniStreams}
	if l.MaxConcurrentStreams > 0 {
		c.MaxIncomingStreams = int64(l.MaxConcurrentStreams)
	}
	if l.IdleTimeout > 0 {
		c.MaxIdleTimeout = l.IdleTimeout
	}
	if l.ReadHeaderTimeout > 0 {
		c.HandshakeIdleTimeout = min(l.ReadHeaderTimeout, 10*time.Second)
	}
	return c
}

// capped applies MaxConns and MaxConnsPerIP to QUIC connections: Accept
// returns a connection only after its handshake (the peer has answered from
// its address), and one over a cap is closed with H3_EXCESSIVE_LOAD.
type capped struct {
	*quic.Listener
	max, perIP int
	mu         sync.Mutex
	total      int
	byIP       map[netip.Addr]int
}

func newCapped(ln *quic.Listener, l serverlimits.Settings) *capped {
	return &capped{Listener: ln, max: l.MaxConns, perIP: l.MaxConnsPerIP, byIP: map[netip.Addr]int{}}
}

// Accept implements http3.QUICListener.
func (c *capped) Accept(ctx context.Context) (*quic.Conn, error) {
	for {
		conn, err := c.Listener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		ip := remoteIP(conn.RemoteAddr())
		if !c.admit(ip) {
			_ = conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections")
			continue
		}
		go func() {
			<-conn.Context().Done()
			c.release(ip)
		}()
		return conn, nil
	}
}

func (c *capped) admit(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if (c.max > 0 && c.total >= c.max) || (c.perIP > 0 && c.byIP[ip] >= c.perIP) {
		return false
	}
	c.total++
	c.byIP[ip]++
	return true
}

func (c *capped) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.byIP[ip]--; c.byIP[ip] <= 0 {
		delete(c.byIP, ip)
	}
}

// open is how many connections are admitted (for tests).
func (c *capped) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// remoteIP is the client a connection counts against, grouped as the TCP
// caps group them: an IPv4 address, or an IPv6 /64.
func remoteIP(a net.Addr) netip.Addr {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := u.AddrPort().Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}
