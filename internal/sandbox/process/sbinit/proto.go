//go:build linux

package sbinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The control protocol between the host and the sandbox init runs over a
// SOCK_SEQPACKET socketpair (fd 3 in init): one JSON message per packet,
// file descriptors (stdio pipes) attached with SCM_RIGHTS. The host sends
// requests with a unique ID; init answers each with op "reply" and the same
// ID, and later sends op "exit" for spawned processes that asked for it.
// When the host side closes, init exits, which kills the whole pid namespace.

// MaxPacket is the largest control message.
const MaxPacket = 1 << 20

// Message ops.
const (
	OpSetup    = "setup"    // host → init: build the root and pivot into it
	OpActivate = "activate" // host → init: mount writable dirs, drop privileges, lock down
	OpSpawn    = "spawn"    // host → init: start a process (fds: stdin, stdout, stderr)
	OpKill     = "kill"     // host → init: signal a pid or process group
	OpPs       = "ps"       // host → init: list processes
	OpReply    = "reply"    // init → host
	OpExit     = "exit"     // init → host: a spawned process with Notify exited

	// The spawner (spawner.go) speaks the same protocol.
	OpStart = "start" // host → spawner: start a sandbox init (fds: its control socket, its stderr)
)

// Message is one control message, in either direction.
type Message struct {
	ID uint64 `json:"id,omitempty"`
	Op string `json:"op"`

	Setup    *SetupConfig    `json:"setup,omitempty"`
	Activate *ActivateConfig `json:"activate,omitempty"`

	// spawn
	Path   string   `json:"path,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Output string   `json:"output,omitempty"` // background output file
	Notify bool     `json:"notify,omitempty"` // send opExit when it exits
	// TTY, on spawn, runs the process on a new terminal of this size made
	// inside the sandbox; the reply carries the terminal's master fd.
	TTY *WindowSize `json:"tty,omitempty"`
	// Files are the fds that came with a reply; the receiver owns them.
	Files []*os.File `json:"-"`

	// start: the first host uid (and gid) of the new init's user namespace
	UIDBase int `json:"uid_base,omitempty"`

	// kill
	PID   int  `json:"pid,omitempty"`
	Sig   int  `json:"sig,omitempty"`
	Group bool `json:"group,omitempty"`

	// replies and events
	Err    string    `json:"err,omitempty"`
	Errno  int       `json:"errno,omitempty"`
	Procs  []Process `json:"procs,omitempty"`
	Code   int       `json:"code,omitempty"`
	Signal int       `json:"signal,omitempty"`
}

// SetupConfig is the template half of a sandbox: what the root looks like.
type SetupConfig struct {
	RootDir  string            `json:"root_dir"` // host dir the new root tmpfs is mounted on
	Binds    []string          `json:"binds"`    // host dirs bind-mounted read-only at the same path
	Symlinks map[string]string `json:"symlinks"` // path -> target, e.g. /bin -> usr/bin
	Masks    []string          `json:"masks"`    // files hidden behind an empty file
	ShmMB    int               `json:"shm_mb"`
	// Layers, for an image template, is the number of read-only layer
	// mounts passed with the setup message (bottom first), followed by one
	// mount holding the sandbox's own upper/ and work/ dirs. The root is an
	// overlay of them instead of Binds/Symlinks/Masks.
	Layers int `json:"layers,omitempty"`
	// Pool: the sandbox is prepared for a warm pool, so init runs its
	// threads' first all-threads call after it replies (warmThreads), in
	// the pool rather than in the claim's activation.
	Pool bool `json:"pool,omitempty"`
}

// ActivateConfig is the per-sandbox half: limits and identity.
type ActivateConfig struct {
	Hostname string `json:"hostname"`
	DiskMB   int    `json:"disk_mb"`
	Pids     int    `json:"pids"`
	NoFile   int    `json:"nofile"`
	// HostWorkspace: the message carries an open host directory to
	// bind-mount on /workspace instead of a tmpfs.
	HostWorkspace bool `json:"host_workspace,omitempty"`
	// Volumes: the message carries one mount per volume after the
	// workspace (volumes.go).
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// Build runs the sandbox's processes as uid 0 of its user namespace
	// with BuildCaps only (a template's build steps; buildcaps.go).
	Build bool `json:"build,omitempty"`
}

// ErrFromReply turns a reply's error fields back into an error; Errno keeps
// errors.Is(err, unix.ENOENT) and friends working across the boundary.
func ErrFromReply(m *Message) error {
	if m.Err == "" {
		return nil
	}
	if m.Errno != 0 {
		return fmt.Errorf("%s: %w", m.Err, unix.Errno(m.Errno))
	}
	return errors.New(m.Err)
}

// ReplyErr is the reply to request id that failed with err.
func ReplyErr(id uint64, err error) *Message {
	m := &Message{ID: id, Op: OpReply, Err: err.Error()}
	var errno unix.Errno
	if errors.As(err, &errno) {
		m.Errno = int(errno)
	}
	return m
}

// Conn is one end of the control socketpair. Send may be called from
// several goroutines; Recv from one at a time.
//
// It is an os.File in non-blocking mode, whose raw reads and writes wait
// in the runtime's poller, rather than a net.UnixConn: package net (and
// path and path/filepath) are initialized late in the binary's package
// order, and every package this one imports must be initialized before
// this package's init starts a sandbox init (see the package doc).
type Conn struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
}

// NewConn wraps a SOCK_SEQPACKET socket fd; it takes ownership of f.
func NewConn(f *os.File) (*Conn, error) {
	defer f.Close()
	// A duplicate in non-blocking mode, so that os.NewFile makes it
	// pollable (the mode is shared with f, which is closed here).
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	nf := os.NewFile(uintptr(fd), "ctl")
	rc, err := nf.SyscallConn()
	if err != nil {
		nf.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Conn{f: nf, rc: rc}, nil
}

// Send sends one message with files attached (SCM_RIGHTS).
func (c *Conn) Send(m *Message, files ...*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > MaxPacket {
		return fmt.Errorf("control message %s: %d bytes, over the %d-byte limit", m.Op, len(b), MaxPacket)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	var werr error
	err = c.rc.Write(func(fd uintptr) bool {
		werr = unix.Sendmsg(int(fd), b, oob, nil, 0)
		return werr != unix.EAGAIN
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return c.wrap("send control message "+m.Op, err)
	}
	return nil
}

// wrap describes err; after Close it is os.ErrClosed.
func (c *Conn) wrap(what string, err error) error {
	if c.closed.Load() {
		return fmt.Errorf("%s: %w", what, os.ErrClosed)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// peekLen waits for the next packet and returns its length without
// consuming it (0 at the end of the connection).
func (c *Conn) peekLen() (int, error) {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// Recv reads one message and any fds attached to it. Its buffer is the
// size of the packet (peeked first): a buffer of MaxPacket for every
// message cost a megabyte of zeroed memory per message, on both sides,
// and was most of the host's CPU in a burst of sandbox creations.
func (c *Conn) Recv() (*Message, []*os.File, error) {
	size, err := c.peekLen()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, ErrEOF
		}
		return nil, nil, c.wrap("receive control message", err)
	}
	if size == 0 { // a SOCK_SEQPACKET peer that closed reads as empty
		return nil, nil, ErrEOF
	}
	buf := make([]byte, min(size, MaxPacket))
	oob := make([]byte, unix.CmsgSpace(4*MaxSetupFiles))
	var n, oobn int
	var rerr error
	err = c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	var files []*os.File
	if err == nil && oobn > 0 {
		scms, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr == nil {
			for _, scm := range scms {
				fds, err := unix.ParseUnixRights(&scm)
				if err != nil {
					continue
				}
				for _, fd := range fds {
					files = append(files, os.NewFile(uintptr(fd), "passed-fd"))
				}
			}
		}
	}
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
	}
	switch {
	case err != nil:
		return nil, nil, c.wrap("receive control message", err)
	case n == 0:
		closeFiles()
		return nil, nil, ErrEOF
	}
	m := new(Message)
	if err := json.Unmarshal(buf[:n], m); err != nil {
		closeFiles()
		return nil, nil, fmt.Errorf("decode control message: %w", err)
	}
	return m, files, nil
}

// Close closes the connection; a Recv waiting on it returns an error
// that wraps os.ErrClosed.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.f.Close()
}

// Socketpair returns a connected SOCK_SEQPACKET pair as files.
func Socketpair() (host, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "ctl-host"), os.NewFile(uintptr(fds[1]), "ctl-init"), nil
}

// ErrEOF is Recv's error once the other side has closed.
var ErrEOF = errors.New("control connection closed")
