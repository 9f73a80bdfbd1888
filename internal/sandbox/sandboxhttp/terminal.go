package sandboxhttp

// Terminals (terminal.go): GET /v1/sandboxes/{id}/terminal upgrades to a
// WebSocket joined to a process on a pseudo-terminal made inside the
// sandbox. Binary messages are the terminal's bytes both ways; text
// messages are api.TerminalControl (resize, signal; exit or error last
// from the server). Every malformed message closes the socket with a
// status and a reason; nothing of a client's reaches the daemon's logs as
// an error. Authorized as sandbox.exec, like exec.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Defaults of a terminal request.
const (
	defaultTerminalCmd  = "bash"
	defaultTerminalTerm = "xterm-256color"
)

func (h *Handler) terminalRoutes(add func(httpapi.Route)) {
	add(httpapi.Route{Method: "GET", Path: "/v1/sandboxes/{sandbox}/terminal", Action: ActionExec,
		RawContentType: "application/octet-stream", Handler: h.handleTerminal,
		Query: []httpapi.QueryParam{
			{Name: "cmd", Description: "the program to run on the terminal (default bash)"},
			{Name: "args", Description: `its arguments as a JSON array of strings, e.g. ["-c","top"]`},
			{Name: "rows", Type: httpapi.QueryInteger, Description: "window rows, 1 to 1000 (default 24)"},
			{Name: "cols", Type: httpapi.QueryInteger, Description: "window columns, 1 to 1000 (default 80)"},
			{Name: "term", Description: "the TERM variable (default xterm-256color)"},
			{Name: "cwd", Description: "working directory (default /workspace)"},
		},
		Summary: "Open a terminal: a WebSocket to a process on a pseudo-terminal inside the sandbox. Binary messages are its bytes both ways; text messages are JSON controls: resize {rows, cols} and signal {signal} from the client, exit {exit_code} or error {problem} from the server before it closes."})
}

// terminalRequest is a validated terminal request.
type terminalRequest struct {
	spec sandbox.ExecSpec
	size sandbox.WindowSize
}

// parseTerminalRequest reads a terminal request's query. Every failure is
// a 4xx problem naming the parameter.
func parseTerminalRequest(q map[string][]string, maxTimeout time.Duration) (terminalRequest, error) {
	get := func(name, def string) string {
		if v := q[name]; len(v) > 0 {
			return v[0]
		}
		return def
	}
	req := api.ExecRequest{Cmd: get("cmd", defaultTerminalCmd), Cwd: get("cwd", ""),
		Env: map[string]string{"TERM": get("term", defaultTerminalTerm)}}
	if a := get("args", ""); a != "" {
		if err := json.Unmarshal([]byte(a), &req.Args); err != nil {
			return terminalRequest{}, api.FieldErrorf(api.KindValidation, "args", `must be a JSON array of strings, e.g. ["-c","top"]: %v`, err)
		}
	}
	if t := req.Env["TERM"]; len(t) > 64 || strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return terminalRequest{}, api.FieldErrorf(api.KindValidation, "term", "must be at most 64 printable ASCII characters, e.g. xterm-256color")
	}
	if err := validateExec(req, maxTimeout); err != nil {
		return terminalRequest{}, err
	}
	size := sandbox.WindowSize{Rows: 24, Cols: 80}
	for _, d := range []struct {
		name string
		max  int
		dst  *uint16
	}{{"rows", sandbox.MaxTerminalRows, &size.Rows}, {"cols", sandbox.MaxTerminalCols, &size.Cols}} {
		v := get(d.name, "")
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > d.max {
			return terminalRequest{}, api.FieldErrorf(api.KindValidation, d.name, "must be a whole number from 1 to %d", d.max)
		}
		*d.dst = uint16(n)
	}
	return terminalRequest{spec: sandbox.ExecSpec{Cmd: req.Cmd, Args: req.Args, Env: req.Env, Cwd: req.Cwd}, size: size}, nil
}

func (h *Handler) handleTerminal(w http.ResponseWriter, r *http.Request) error {
	sb, err := h.m.Get(r.PathValue("sandbox"))
	if err != nil {
		return problemFor(err)
	}
	req, err := parseTerminalRequest(r.URL.Query(), h.maxTimeout)
	if err != nil {
		return err
	}
	tm, ok := sb.(sandbox.Terminaler)
	if !ok {
		return api.Errorf(api.KindBadRequest, "sandbox %s: the %s tier has no terminals yet; use exec (POST .../exec) or the process tier", sb.ID(), sb.Tier())
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return api.Errorf(api.KindBadRequest, "a terminal is a WebSocket: send GET with Upgrade: websocket (agentcloud sandbox shell ID does)")
	}
	// The terminal lives as long as the socket, not as long as the
	// request's context (which ends when the handler returns).
	term, err := tm.Terminal(context.WithoutCancel(r.Context()), req.spec, req.size)
	if err != nil {
		return execProblem(req.spec.Cmd, err)
	}
	defer term.Close()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil // Accept has answered (e.g. 403 for a foreign Origin)
	}
	conn.SetReadLimit(api.TerminalMaxMessage)
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	go func() {
		// When the client is gone or broke the protocol, the terminal is
		// hung up: its process group is killed and its output ends.
		status, reason := h.terminalInput(ctx, conn, term)
		if status != 0 {
			_ = conn.Close(status, reason)
		}
		_ = term.Close()
	}()
	h.terminalOutput(ctx, conn, term)
	return nil
}

// terminalOutput copies the terminal to the socket, then sends how the
// process ended and closes the socket normally.
func (h *Handler) terminalOutput(ctx context.Context, conn *websocket.Conn, term sandbox.Terminal) {
	buf := make([]byte, 32<<10)
	for {
		n, err := term.Read(buf)
		if n > 0 {
			if werr := conn.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
				return // the client went away; the deferred Close kills the process
			}
		}
		if err != nil {
			break
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	code, err := term.Wait(wctx)
	msg := api.TerminalControl{Type: api.TerminalExit, ExitCode: &code}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		msg = api.TerminalControl{Type: api.TerminalError, Problem: api.AsProblem(problemFor(err))}
	}
	b, _ := json.Marshal(msg)
	if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
		return
	}
	_ = conn.Close(websocket.StatusNormalClosure, "the process exited")
}

// terminalInput copies the client's messages to the terminal until the
// socket ends. It returns the close status and reason for a client that
// broke the protocol, or 0.
func (h *Handler) terminalInput(ctx context.Context, conn *websocket.Conn, term sandbox.Terminal) (websocket.StatusCode, string) {
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return 0, "" // closed, too large (the library sends 1009) or gone
		}
		if typ == websocket.MessageBinary {
			if _, err := term.Write(data); err != nil && !errors.Is(err, io.EOF) {
				return 0, ""
			}
			continue
		}
		if reason := h.terminalControl(ctx, term, data); reason != "" {
			return websocket.StatusPolicyViolation, reason
		}
	}
}

// terminalControl applies one control message; it returns why the message
// is refused, or "".
func (h *Handler) terminalControl(ctx context.Context, term sandbox.Terminal, data []byte) string {
	c, err := parseTerminalControl(data)
	if err != nil {
		return err.Error()
	}
	switch c.Type {
	case api.TerminalResize:
		err = term.Resize(sandbox.WindowSize{Rows: uint16(c.Rows), Cols: uint16(c.Cols)})
	case api.TerminalSignal:
		sig, _ := ParseSignal(c.Signal)
		err = term.Signal(ctx, sig)
	}
	if err != nil { // the process is going away; the exit message follows
		h.log.DebugContext(ctx, "terminal control", "type", c.Type, "err", err)
	}
	return ""
}

// parseTerminalControl reads and checks a client's control message. Its
// errors are close reasons (at most 123 bytes, as WebSocket allows).
func parseTerminalControl(data []byte) (api.TerminalControl, error) {
	var c api.TerminalControl
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return c, errors.New(`control message: want JSON such as {"type":"resize","rows":24,"cols":80}`)
	}
	switch c.Type {
	case api.TerminalResize:
		if c.Rows < 1 || c.Rows > sandbox.MaxTerminalRows || c.Cols < 1 || c.Cols > sandbox.MaxTerminalCols {
			return c, errors.New("resize: rows and cols must be from 1 to 1000")
		}
	case api.TerminalSignal:
		if _, err := ParseSignal(c.Signal); err != nil {
			return c, errors.New("signal: want one of TERM, KILL, INT, HUP, QUIT, USR1, USR2, STOP, CONT")
		}
	default:
		return c, errors.New(`control message: type must be "resize" or "signal"`)
	}
	return c, nil
}
