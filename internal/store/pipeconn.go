package store

import (
	"net"
	"os"
	"sync"
	"time"
)

// The embedded server's in-process connection is a net.Pipe: a write
// returns only once the server's read loop has read all of it. The NATS
// client writes from its flusher while holding the connection's lock, so
// while the server's read loop is busy (a JetStream write, a block file
// append) every publisher and every reply on the connection waits for it.
// bufferedConn takes the client's writes into a buffer that one goroutine
// hands to the pipe, so the lock is held for a copy, not for the server's
// work (docs/RATIONALE.md, "Why the in-process store connection buffers
// its writes"). Order is kept (one writer); nothing is acknowledged
// earlier than before, since an acknowledgement still comes from the
// server after it has the message.

// bufferedConnMax bounds the bytes waiting for the pipe; a write beyond it
// blocks until the server has read some (the backpressure net.Pipe gave).
const bufferedConnMax = 4 << 20

// inProcessProvider hands the NATS client a buffered in-process
// connection to the embedded server.
type inProcessProvider struct {
	srv interface{ InProcessConn() (net.Conn, error) }
}

// InProcessConn implements nats.InProcessConnProvider.
func (p inProcessProvider) InProcessConn() (net.Conn, error) {
	c, err := p.srv.InProcessConn()
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

// bufferedConn is a net.Conn whose writes are queued for a goroutine that
// writes them to the wrapped connection in order. The goroutine runs only
// while bytes wait (an idle conn has none, so one its client abandons
// without closing leaks nothing). Reads, addresses and read deadlines are
// the wrapped connection's.
type bufferedConn struct {
	net.Conn

	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte    // queued bytes not yet taken by the writer
	spare    []byte    // the writer's last buffer, for reuse
	inflight int       // bytes the writer is writing now
	writing  bool      // the writer goroutine runs
	err      error     // the first write error, or net.ErrClosed once closed
	closed   bool      // Close was called
	deadline time.Time // write deadline: a Write blocked on a full buffer gives up then
}

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// Write queues p. It blocks only while bufferedConnMax bytes are already
// waiting, and fails once an earlier write failed or the conn closed.
func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var timer *time.Timer
	var armed time.Time // the deadline timer is set for
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for b.err == nil && len(b.buf) > 0 && len(b.buf)+b.inflight+len(p) > bufferedConnMax {
		if !b.deadline.IsZero() {
			d := time.Until(b.deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			if !b.deadline.Equal(armed) { // set, or moved meanwhile
				if timer != nil {
					timer.Stop()
				}
				armed = b.deadline
				timer = time.AfterFunc(d, func() {
					b.mu.Lock()
					b.cond.Broadcast()
					b.mu.Unlock()
				})
			}
		}
		b.cond.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	if !b.writing {
		b.writing = true
		go b.writeLoop()
	}
	return len(p), nil
}

// writeLoop writes the queued bytes to the wrapped conn until none wait,
// it closes or a write fails.
func (b *bufferedConn) writeLoop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) > 0 && b.err == nil {
		out := b.buf
		b.buf, b.spare = b.spare[:0], nil
		b.inflight = len(out)
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		b.inflight = 0
		if err != nil && b.err == nil {
			b.err = err
		}
		if cap(out) <= bufferedConnMax {
			b.spare = out[:0]
		}
		b.cond.Broadcast()
	}
	b.writing = false
	b.cond.Broadcast()
}

// SetWriteDeadline bounds how long a Write waits for room in the buffer.
func (b *bufferedConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.cond.Broadcast()
	b.mu.Unlock()
	return nil
}

// SetDeadline sets the read and write deadlines.
func (b *bufferedConn) SetDeadline(t time.Time) error {
	_ = b.SetWriteDeadline(t)
	return b.Conn.SetReadDeadline(t)
}

// closeFlushWait bounds how long Close waits for queued bytes to reach
// the server.
const closeFlushWait = time.Second

// Close hands what is queued to the server (up to closeFlushWait, as a
// socket's close would send it), closes the wrapped conn and waits for
// the writer to stop.
func (b *bufferedConn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return net.ErrClosed
	}
	b.closed = true
	t := time.AfterFunc(closeFlushWait, func() {
		b.mu.Lock()
		if b.err == nil {
			b.err = net.ErrClosed
		}
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	for b.err == nil && (len(b.buf) > 0 || b.inflight > 0) {
		b.cond.Wait()
	}
	t.Stop()
	if b.err == nil {
		b.err = net.ErrClosed
	}
	b.buf = nil
	b.cond.Broadcast()
	b.mu.Unlock()
	err := b.Conn.Close() // unblocks a writer inside the pipe
	b.mu.Lock()
	for b.writing {
		b.cond.Wait()
	}
	b.mu.Unlock()
	return err
}
