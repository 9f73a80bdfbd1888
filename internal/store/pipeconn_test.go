package store

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestBufferedConnClass: the in-process connection's buffered writes reach
// the other end complete and in each writer's order while it reads slowly;
// a writer facing a full buffer and a reader that never reads gives up at
// its write deadline; Close with a reader that never reads returns (it
// does not hang on the pipe) and later writes fail; a write error of the
// pipe is returned by a later Write.
func TestBufferedConnClass(t *testing.T) {
	t.Run("order", func(t *testing.T) {
		a, b := net.Pipe()
		c := newBufferedConn(a)
		var got bytes.Buffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 7) // small reads: the writer stays ahead
			for {
				n, err := b.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					return
				}
			}
		}()
		var mu sync.Mutex // one writer at a time, as the client's flusher
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 200 {
					mu.Lock()
					_, err := c.Write([]byte("w" + strconv.Itoa(w) + ":" + strconv.Itoa(i) + ";"))
					mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		<-done
		next := map[string]int{}
		for _, rec := range bytes.Split(bytes.TrimSuffix(got.Bytes(), []byte(";")), []byte(";")) {
			w, i, _ := bytes.Cut(rec, []byte(":"))
			n, _ := strconv.Atoi(string(i))
			if n != next[string(w)] {
				t.Fatalf("writer %s: record %d after %d", w, n, next[string(w)]-1)
			}
			next[string(w)]++
		}
		for w := range 4 {
			if next["w"+strconv.Itoa(w)] != 200 {
				t.Fatalf("writer %d: %d of 200 records arrived", w, next["w"+strconv.Itoa(w)])
			}
		}
	})
	t.Run("full", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := newBufferedConn(a)
		big := make([]byte, bufferedConnMax)
		if _, err := c.Write(big); err != nil { // taken by the writer, stuck in the pipe
			t.Fatal(err)
		}
		for c.queued() != 0 {
			time.Sleep(time.Millisecond)
		}
		if _, err := c.Write(big[:1]); err != nil { // queued
			t.Fatal(err)
		}
		_ = c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := c.Write(big); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write to a full buffer past its deadline: %v", err)
		}
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		if err := <-closed; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("close: %v", err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write after close: %v", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second close: %v", err)
		}
	})
	t.Run("pipe error", func(t *testing.T) {
		a, b := net.Pipe()
		c := newBufferedConn(a)
		_ = b.Close() // the server's end goes away
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			_, err = c.Write([]byte("x"))
			time.Sleep(time.Millisecond)
		}
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("writes after the peer closed: %v", err)
		}
		_ = c.Close()
	})
}

// queued is the bytes waiting for the writer (tests).
func (b *bufferedConn) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.buf)
}

// writerRunning reports whether b's writer goroutine runs (tests).
func (b *bufferedConn) writerRunning() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writing
}

// TestBufferedConnIdleClass: a connection with nothing queued has no
// writer goroutine, so one its client abandons without Close (the NATS
// client after a failed reconnect handshake) leaks nothing; a write
// deadline moved earlier while a Write waits for room is the one honoured.
func TestBufferedConnIdleClass(t *testing.T) {
	t.Run("abandoned", func(t *testing.T) {
		a, b := net.Pipe()
		c := newBufferedConn(a)
		if c.writerRunning() {
			t.Fatal("a new connection runs a writer")
		}
		got := make([]byte, 18)
		if _, err := c.Write([]byte("CONNECT {}\r\nPING\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, got); err != nil {
			t.Fatal(err)
		}
		_ = b.Close() // the server gives up on the handshake
		c.mu.Lock()
		for c.writing {
			c.cond.Wait() // hangs (the test's timeout) if the writer stays
		}
		c.mu.Unlock()
	})
	t.Run("deadline moved earlier", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		c := newBufferedConn(a)
		defer c.Close()
		big := make([]byte, bufferedConnMax)
		if _, err := c.Write(big); err != nil { // the writer takes it and blocks in the pipe
			t.Fatal(err)
		}
		for c.queued() != 0 {
			time.Sleep(time.Millisecond)
		}
		if _, err := c.Write(big[:1]); err != nil {
			t.Fatal(err)
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Hour))
		done := make(chan error, 1)
		go func() { _, err := c.Write(big); done <- err }()
		time.Sleep(20 * time.Millisecond)
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write past its moved deadline: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a Write waited past a deadline moved earlier (it kept the first one, an hour)")
		}
	})
}
