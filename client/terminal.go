package client

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/agentcloud/agentcloud/api"
)

// TerminalOptions say what runs on a terminal; zero values take the
// server's defaults (bash, 24x80, xterm-256color, /workspace).
type TerminalOptions struct {
	Cmd        string
	Args       []string
	Rows, Cols int
	Term       string
	Cwd        string
}

// Terminal is an open terminal in a sandbox: a WebSocket (written with the
// standard library only, RFC 6455 client side) whose binary messages are
// the terminal's bytes.
type Terminal struct {
	body io.ReadWriteCloser
	br   *bufio.Reader

	wmu    sync.Mutex // one frame at a time
	closed bool

	// Exit is the exit status, once the server sent it (see Copy).
	Exit *api.TerminalControl
}

// OpenTerminal opens a terminal in sandbox id (GET /v1/sandboxes/{id}/terminal).
func (c *Client) OpenTerminal(ctx context.Context, id string, opt TerminalOptions) (*Terminal, error) {
	q := url.Values{}
	if opt.Cmd != "" {
		q.Set("cmd", opt.Cmd)
	}
	if len(opt.Args) > 0 {
		b, _ := json.Marshal(opt.Args)
		q.Set("args", string(b))
	}
	if opt.Rows > 0 {
		q.Set("rows", strconv.Itoa(opt.Rows))
	}
	if opt.Cols > 0 {
		q.Set("cols", strconv.Itoa(opt.Cols))
	}
	if opt.Term != "" {
		q.Set("term", opt.Term)
	}
	if opt.Cwd != "" {
		q.Set("cwd", opt.Cwd)
	}
	u := *c.base
	u.Path += sandboxPath(id) + "/terminal"
	u.RawQuery = q.Encode()
	if err := checkDotSegments("id", sandboxPath(id)); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("open terminal: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return nil, decodeProblem(resp)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	body, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		resp.Body.Close()
		return nil, errors.New("open terminal: the server did not accept the WebSocket")
	}
	return &Terminal{body: body, br: bufio.NewReader(body)}, nil
}

// WebSocket opcodes.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxTerminalFrame bounds a frame the client accepts from the server.
const maxTerminalFrame = 16 << 20

// writeFrame sends one masked frame.
func (t *Terminal) writeFrame(op byte, p []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.closed {
		return errors.New("terminal closed")
	}
	hdr := make([]byte, 0, 14)
	hdr = append(hdr, 0x80|op)
	switch n := len(p); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	buf := make([]byte, len(hdr)+len(p))
	copy(buf, hdr)
	for i, b := range p {
		buf[len(hdr)+i] = b ^ mask[i%4]
	}
	_, err := t.body.Write(buf)
	if op == opClose {
		t.closed = true
	}
	return err
}

// readFrame reads one frame (the server does not mask).
func (t *Terminal) readFrame() (fin bool, op byte, p []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(t.br, h[:]); err != nil {
		return false, 0, nil, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0F
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(t.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(t.br, b[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 || n > maxTerminalFrame {
		return false, 0, nil, errors.New("terminal: malformed frame from the server")
	}
	p = make([]byte, n)
	_, err = io.ReadFull(t.br, p)
	return fin, op, p, err
}

// ReadMessage returns the next message: binary terminal output, or a text
// control message (text true). It answers pings, and returns io.EOF when
// the server closes the socket.
func (t *Terminal) ReadMessage() (text bool, data []byte, err error) {
	var msg []byte
	var first byte
	for {
		fin, op, p, err := t.readFrame()
		if err != nil {
			return false, nil, err
		}
		switch op {
		case opPing:
			_ = t.writeFrame(opPong, p)
			continue
		case opPong:
			continue
		case opClose:
			_ = t.writeFrame(opClose, p)
			return false, nil, io.EOF
		case opText, opBinary:
			first = op
		}
		msg = append(msg, p...)
		if len(msg) > maxTerminalFrame {
			return false, nil, errors.New("terminal: message from the server too large")
		}
		if fin {
			return first == opText, msg, nil
		}
	}
}

// Write types p on the terminal.
func (t *Terminal) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += api.TerminalMaxMessage {
		end := min(off+api.TerminalMaxMessage, len(p))
		if err := t.writeFrame(opBinary, p[off:end]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// Control sends a control message (resize or signal).
func (t *Terminal) Control(c api.TerminalControl) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return t.writeFrame(opText, b)
}

// Resize sets the terminal's window size.
func (t *Terminal) Resize(rows, cols int) error {
	return t.Control(api.TerminalControl{Type: api.TerminalResize, Rows: rows, Cols: cols})
}

// Signal sends a signal (INT, TERM, ...) to the terminal's process group.
func (t *Terminal) Signal(name string) error {
	return t.Control(api.TerminalControl{Type: api.TerminalSignal, Signal: name})
}

// Copy writes the terminal's output to w until the socket closes and
// returns the process's exit status; an error event becomes an error.
func (t *Terminal) Copy(w io.Writer) (int, error) {
	for {
		text, data, err := t.ReadMessage()
		if errors.Is(err, io.EOF) {
			if t.Exit == nil {
				return -1, errors.New("terminal closed before the process exited")
			}
			if t.Exit.Problem != nil {
				return -1, t.Exit.Problem
			}
			return *t.Exit.ExitCode, nil
		}
		if err != nil {
			return -1, err
		}
		if !text {
			if _, err := w.Write(data); err != nil {
				return -1, err
			}
			continue
		}
		var c api.TerminalControl
		if json.Unmarshal(data, &c) == nil && (c.Type == api.TerminalExit && c.ExitCode != nil || c.Type == api.TerminalError && c.Problem != nil) {
			t.Exit = &c
		}
	}
}

// Close closes the socket; the server then hangs the terminal up.
func (t *Terminal) Close() error {
	_ = t.writeFrame(opClose, []byte{0x03, 0xE8}) // 1000, normal closure
	return t.body.Close()
}
