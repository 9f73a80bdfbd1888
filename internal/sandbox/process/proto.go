//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// The control protocol between the host and the sandbox init runs over a
// SOCK_SEQPACKET socketpair (fd 3 in init): one JSON message per packet,
// file descriptors (stdio pipes) attached with SCM_RIGHTS. The host sends
// requests with a unique ID; init answers each with op "reply" and the same
// ID, and later sends op "exit" for spawned processes that asked for it.
// When the host side closes, init exits, which kills the whole pid namespace.

const maxPacket = 1 << 20

// Message ops.
const (
	opSetup    = "setup"    // host → init: build the root and pivot into it
	opActivate = "activate" // host → init: mount writable dirs, drop privileges, lock down
	opSpawn    = "spawn"    // host → init: start a process (fds: stdin, stdout, stderr)
	opKill     = "kill"     // host → init: signal a pid or process group
	opPs       = "ps"       // host → init: list processes
	opReply    = "reply"    // init → host
	opExit     = "exit"     // init → host: a spawned process with Notify exited
)

type message struct {
	ID uint64 `json:"id,omitempty"`
	Op string `json:"op"`

	Setup    *setupConfig    `json:"setup,omitempty"`
	Activate *activateConfig `json:"activate,omitempty"`

	// spawn
	Path   string   `json:"path,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Output string   `json:"output,omitempty"` // background output file
	Notify bool     `json:"notify,omitempty"` // send opExit when it exits
	// TTY, on spawn, runs the process on a new terminal of this size made
	// inside the sandbox; the reply carries the terminal's master fd.
	TTY *sandbox.WindowSize `json:"tty,omitempty"`
	// Files are the fds that came with a reply; the receiver owns them.
	Files []*os.File `json:"-"`

	// kill
	PID   int  `json:"pid,omitempty"`
	Sig   int  `json:"sig,omitempty"`
	Group bool `json:"group,omitempty"`

	// replies and events
	Err    string            `json:"err,omitempty"`
	Errno  int               `json:"errno,omitempty"`
	Procs  []sandbox.Process `json:"procs,omitempty"`
	Code   int               `json:"code,omitempty"`
	Signal int               `json:"signal,omitempty"`
}

// setupConfig is the template half of a sandbox: what the root looks like.
type setupConfig struct {
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
}

// activateConfig is the per-sandbox half: limits and identity.
type activateConfig struct {
	Hostname string `json:"hostname"`
	DiskMB   int    `json:"disk_mb"`
	Pids     int    `json:"pids"`
	NoFile   int    `json:"nofile"`
	// HostWorkspace: the message carries an open host directory to
	// bind-mount on /workspace instead of a tmpfs.
	HostWorkspace bool `json:"host_workspace,omitempty"`
	// Volumes: the message carries one mount per volume after the
	// workspace (volumes.go).
	Volumes []volumeMount `json:"volumes,omitempty"`
}

// errFromReply turns a reply's error fields back into an error; Errno keeps
// errors.Is(err, unix.ENOENT) and friends working across the boundary.
func errFromReply(m *message) error {
	if m.Err == "" {
		return nil
	}
	if m.Errno != 0 {
		return fmt.Errorf("%s: %w", m.Err, unix.Errno(m.Errno))
	}
	return errors.New(m.Err)
}

func replyErr(id uint64, err error) *message {
	m := &message{ID: id, Op: opReply, Err: err.Error()}
	var errno unix.Errno
	if errors.As(err, &errno) {
		m.Errno = int(errno)
	}
	return m
}

// conn is one end of the control socketpair.
type conn struct {
	uc *net.UnixConn
}

// newConn wraps a SOCK_SEQPACKET socket fd; it takes ownership of f.
func newConn(f *os.File) (*conn, error) {
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("control socket: unexpected %T", c)
	}
	return &conn{uc: uc}, nil
}

func (c *conn) send(m *message, files ...*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.uc.WriteMsgUnix(b, oob, nil)
	return err
}

// recv reads one message and any fds attached to it.
func (c *conn) recv() (*message, []*os.File, error) {
	buf := make([]byte, maxPacket)
	oob := make([]byte, unix.CmsgSpace(4*maxSetupFiles))
	n, oobn, _, _, err := c.uc.ReadMsgUnix(buf, oob)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errEOF
		}
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, errEOF
	}
	var files []*os.File
	if oobn > 0 {
		scms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil {
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
	m := new(message)
	if err := json.Unmarshal(buf[:n], m); err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, fmt.Errorf("decode control message: %w", err)
	}
	return m, files, nil
}

func (c *conn) close() error { return c.uc.Close() }

// socketpair returns a connected SOCK_SEQPACKET pair as files.
func socketpair() (host, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "ctl-host"), os.NewFile(uintptr(fds[1]), "ctl-init"), nil
}

var errEOF = errors.New("control connection closed")
