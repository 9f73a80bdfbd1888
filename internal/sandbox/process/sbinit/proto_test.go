//go:build linux

package sbinit

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func connPair(t testing.TB) (*Conn, *Conn) {
	t.Helper()
	a, b, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewConn(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := NewConn(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close(); cb.Close() })
	return ca, cb
}

// TestRecvBufferSizeClass: every message of the control protocol arrives
// whole, whatever its size (tiny, typical, near the limit) and with or
// without fds, and receiving one allocates in proportion to the message,
// not to MaxPacket (a megabyte per message was most of a creation burst's
// CPU). Over the limit, Send refuses with an error that says so.
func TestRecvBufferSizeClass(t *testing.T) {
	host, init := connPair(t)
	for _, n := range []int{0, 10, 2 << 10, 64 << 10, 150 << 10} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			arg := strings.Repeat("x", n)
			var files []*os.File
			if n%2 == 0 {
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				defer w.Close()
				files = []*os.File{r, w}
			}
			if err := host.Send(&Message{ID: 7, Op: OpSpawn, Argv: []string{arg}}, files...); err != nil {
				t.Fatal(err)
			}
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			m, got, err := init.Recv()
			runtime.ReadMemStats(&ms1)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range got {
				f.Close()
			}
			if m.ID != 7 || m.Op != OpSpawn || len(m.Argv) != 1 || m.Argv[0] != arg || len(got) != len(files) {
				t.Fatalf("got id %d op %q %d args, %d files; want 7 %q, 1 arg of %d bytes, %d files", m.ID, m.Op, len(m.Argv), len(got), OpSpawn, n, len(files))
			}
			if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > uint64(4*n+(64<<10)) {
				t.Errorf("receiving a %d-byte message allocated %d bytes", n, alloc)
			}
		})
	}
	err := host.Send(&Message{Op: OpSpawn, Argv: []string{strings.Repeat("x", MaxPacket)}})
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized message: %v", err)
	}
	host.Close()
	if _, _, err := init.Recv(); !errors.Is(err, ErrEOF) {
		t.Fatalf("after close: %v, want ErrEOF", err)
	}
}

// FuzzRecv: whatever packet arrives on the control socket, Recv returns a
// message or an error, never panics.
func FuzzRecv(f *testing.F) {
	f.Add([]byte(`{"id":1,"op":"spawn","argv":["a"]}`))
	f.Add([]byte(`{"op":"reply","procs":[{"pid":2}]}`))
	f.Add([]byte(`{"op":`))
	f.Add([]byte{0xff, 0})
	a, b, err := Socketpair()
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	c, err := NewConn(b)
	if err != nil {
		f.Fatal(err)
	}
	defer c.Close()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if len(pkt) == 0 || len(pkt) > 64<<10 {
			return // an empty packet is the end of the connection
		}
		if _, err := unix.Write(int(a.Fd()), pkt); err != nil {
			t.Skip(err)
		}
		m, files, err := c.Recv()
		for _, f := range files {
			f.Close()
		}
		if err == nil && m == nil {
			t.Fatal("no message and no error")
		}
	})
}

// TestSbinitStaysLeaf: this package imports only the standard library and
// golang.org/x/sys/unix, and none of the standard packages that come late
// in the initialization order (net, path/filepath), so that its init
// function (where a sandbox init starts) runs before the binary's heavy
// package initializers.
func TestSbinitStaysLeaf(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && p != "golang.org/x/sys/unix" {
				t.Errorf("%s imports %s: package sbinit may import only the standard library and golang.org/x/sys/unix", name, p)
			}
			if first == "net" || p == "path/filepath" {
				t.Errorf("%s imports %s, which is initialized late: the sandbox init would wait for it", name, p)
			}
		}
	}
}

// TestConnCloseAndConcurrentSendClass: messages sent from many goroutines
// at once each arrive whole, with their fds; a Recv blocked when its own
// side closes returns an error that wraps os.ErrClosed (not a hang, not
// ErrEOF), and so do Send and Recv after Close; a malformed message with
// fds attached fails and leaves no fd open.
func TestConnCloseAndConcurrentSendClass(t *testing.T) {
	host, init := connPair(t)
	const n = 64
	errs := make(chan error, n)
	for i := range n {
		go func() {
			r, w, err := os.Pipe()
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			defer w.Close()
			errs <- host.Send(&Message{ID: uint64(i), Op: OpSpawn, Argv: []string{strings.Repeat("y", i*100)}}, r, w)
		}()
	}
	seen := map[uint64]bool{}
	for range n {
		m, files, err := init.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			f.Close()
		}
		if len(files) != 2 || len(m.Argv) != 1 || len(m.Argv[0]) != int(m.ID)*100 || seen[m.ID] {
			t.Fatalf("message %d: %d files, argv %d bytes, seen before %v", m.ID, len(files), len(m.Argv[0]), seen[m.ID])
		}
		seen[m.ID] = true
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// Malformed JSON with two fds attached: an error, and both fds closed.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := unix.Sendmsg(int(host.f.Fd()), []byte(`{"op":`), unix.UnixRights(int(r.Fd()), int(w.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, files, err := init.Recv(); err == nil || files != nil {
		t.Fatalf("malformed message: files %v, err %v", files, err)
	}
	// Every write end is closed: the read end sees EOF at once.
	if n, err := r.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("a passed fd stayed open: read %d, %v", n, err)
	}

	done := make(chan error, 1)
	go func() {
		_, _, err := init.Recv()
		done <- err
	}()
	runtime.Gosched()
	init.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Recv blocked across Close: %v, want os.ErrClosed", err)
	}
	if _, _, err := init.Recv(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Recv after Close: %v, want os.ErrClosed", err)
	}
	if err := init.Send(&Message{Op: OpReply}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Send after Close: %v, want os.ErrClosed", err)
	}
}
