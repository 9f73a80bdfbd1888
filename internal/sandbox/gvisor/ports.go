//go:build linux

package gvisor

// Ports: the sandbox's netstack is gVisor's own (runsc --network=none),
// with a loopback but no host network namespace to connect inside, so a
// port is reached through the exec agent (agent.go): on a connection of
// its own, {"op": "port", "port": N} has the agent connect to
// 127.0.0.1:N (or [::1]:N) inside the sandbox and answer P (connected) or
// F (why not); the connection then carries the TCP stream's bytes both
// ways, unframed, until either side closes. The agent takes a port number
// only and connects to its own loopback only.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

const (
	// portRelayMax bounds the relayed connections open at once to one
	// sandbox: each holds a host socket and two threads of its agent.
	portRelayMax = 64
	// portDialTimeout bounds the agent's connect inside the sandbox and
	// its answer; the stream itself has no deadline (a WebSocket may idle).
	portDialTimeout = 15 * time.Second
	// portSlotWait is how long a dial waits for a place under
	// portRelayMax before it is refused.
	portSlotWait = 2 * time.Second
)

var _ sandbox.PortDialer = (*container)(nil)

// DialPort connects to port on the sandbox's loopback through its exec
// agent; see sandbox.PortDialer.
func (c *container) DialPort(ctx context.Context, port int) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("port %d: %w", port, sandbox.ErrBadPort)
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	a := c.agent
	if a == nil {
		return nil, fmt.Errorf("ports of a gvisor sandbox without an exec agent (no python3 in its image): %w", sandbox.ErrUnsupported)
	}
	if err := a.relaySlot(ctx); err != nil {
		return nil, fmt.Errorf("port %d: %w", port, err)
	}
	conn, err := c.dialPort(ctx, a, port)
	if err != nil {
		<-a.relays
		return nil, err
	}
	return &relayConn{UnixConn: conn, release: func() { <-a.relays }}, nil
}

// relaySlot takes a place under portRelayMax, waiting up to portSlotWait.
func (a *agent) relaySlot(ctx context.Context) error {
	select {
	case a.relays <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(portSlotWait)
	defer t.Stop()
	select {
	case a.relays <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("%w (%d)", sandbox.ErrPortConns, portRelayMax)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *container) dialPort(ctx context.Context, a *agent, port int) (*net.UnixConn, error) {
	ctx, cancel := context.WithTimeout(ctx, portDialTimeout)
	defer cancel()
	conn, err := a.conn(ctx)
	if errors.Is(err, errNoAgent) {
		return nil, fmt.Errorf("port %d: the sandbox's exec agent does not answer", port)
	}
	if err != nil {
		return nil, fmt.Errorf("port %d: %w", port, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write([]byte(`{"op":"port","port":` + strconv.Itoa(port) + "}\n")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("port %d: exec agent: %w", port, err)
	}
	// Unbuffered reads: what follows the answer is the stream's.
	var h [5]byte
	if _, err := io.ReadFull(conn, h[:]); err != nil || binary.BigEndian.Uint32(h[1:]) > 4096 {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("port %d: %w", port, ctx.Err())
		}
		return nil, fmt.Errorf("port %d: exec agent: no answer", port)
	}
	msg := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(conn, msg); err != nil {
		conn.Close()
		return nil, fmt.Errorf("port %d: exec agent: %w", port, err)
	}
	if h[0] != 'P' {
		conn.Close()
		return nil, fmt.Errorf("connect to port %d in the sandbox: %s", port, msg)
	}
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("port %d: %w", port, ctx.Err())
	}
	return conn, nil
}

// relayConn is one relayed connection; closing it frees its place under
// portRelayMax.
type relayConn struct {
	*net.UnixConn
	once    sync.Once
	release func()
}

func (r *relayConn) Close() error {
	err := r.UnixConn.Close()
	r.once.Do(r.release)
	return err
}
