//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// PortDialer is implemented by sandboxes whose listening ports are reached
// some other way than through a host network namespace (the gVisor tier
// relays through its exec agent). The ports route reaches every tier
// through DialPort; only the dial differs between them.
type PortDialer interface {
	// DialPort connects to 127.0.0.1:port (or [::1]:port) inside the
	// sandbox, and nowhere else. The context bounds the connect only.
	DialPort(ctx context.Context, port int) (net.Conn, error)
}

var (
	// ErrBadPort means a port outside 1–65535.
	ErrBadPort = errors.New("want a TCP port from 1 to 65535")
	// ErrPortConns means the sandbox has as many relayed port connections
	// open as its tier allows.
	ErrPortConns = errors.New("too many connections to the sandbox's ports at once")
)

// DialPort connects to what listens on port on the sandbox's own
// loopback: through the sandbox's PortDialer if it has one, or else
// inside its network namespace (NetNSPath). A tier with neither answers
// an error wrapping ErrUnsupported.
func DialPort(ctx context.Context, sb Sandbox, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: %w", port, ErrBadPort)
	}
	if d, ok := sb.(PortDialer); ok {
		return d.DialPort(ctx, port)
	}
	ns, err := sb.NetNSPath()
	if err != nil {
		return nil, fmt.Errorf("ports of %s sandboxes: %w", sb.Tier(), err)
	}
	p := strconv.Itoa(port)
	conn, err := DialInNetNS(ctx, ns, "tcp", net.JoinHostPort("127.0.0.1", p))
	if errors.Is(err, syscall.ECONNREFUSED) {
		// A server may listen on the IPv6 loopback only.
		if c6, err6 := DialInNetNS(ctx, ns, "tcp", net.JoinHostPort("::1", p)); err6 == nil {
			return c6, nil
		}
	}
	return conn, err
}

// DialPort keeps the tier's own dial behind the metering wrapper.
func (s metered) DialPort(ctx context.Context, port int) (net.Conn, error) {
	return DialPort(ctx, s.Sandbox, port)
}

var _ PortDialer = metered{}
