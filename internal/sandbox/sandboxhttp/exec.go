package sandboxhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// DecodeExecRequest reads and validates an exec request body. Every
// failure is a 4xx problem naming the field.
func DecodeExecRequest(r *http.Request, maxTimeout time.Duration) (api.ExecRequest, error) {
	var req api.ExecRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return req, err
	}
	return req, validateExec(req, maxTimeout)
}

func validateExec(req api.ExecRequest, maxTimeout time.Duration) error {
	var errs []api.FieldError
	bad := func(field, detail string) { errs = append(errs, api.FieldError{Field: field, Detail: detail}) }
	switch {
	case req.Cmd == "":
		bad("cmd", "is required: name the program to run, e.g. python3")
	case strings.ContainsRune(req.Cmd, 0) || len(req.Cmd) > 4096:
		bad("cmd", "must be at most 4096 bytes without NUL")
	}
	for i, a := range req.Args {
		if strings.ContainsRune(a, 0) {
			bad("args["+strconv.Itoa(i)+"]", "must not contain NUL")
		}
	}
	errs = append(errs, checkEnv("env", req.Env)...)
	if req.Cwd != "" && (!strings.HasPrefix(req.Cwd, "/") || strings.ContainsRune(req.Cwd, 0)) {
		bad("cwd", "must be an absolute path inside the sandbox, e.g. /workspace")
	}
	if math.IsNaN(req.TimeoutS) || req.TimeoutS < 0 || req.TimeoutS > maxTimeout.Seconds() {
		bad("timeout_s", fmt.Sprintf("must be between 0 (no limit) and %.0f seconds", maxTimeout.Seconds()))
	}
	if req.Background && req.Stdin != "" {
		bad("stdin", "cannot be used with background: true; write the input to a file and redirect it")
	}
	if req.Background && req.TimeoutS > 0 {
		bad("timeout_s", "cannot be used with background: true; signal the process instead")
	}
	if req.OutputFile != "" {
		if !req.Background {
			bad("output_file", "only applies with background: true; foreground output is streamed")
		} else if _, _, err := sandbox.ResolvePath(req.OutputFile); err != nil {
			bad("output_file", "must be under /workspace or /tmp")
		}
	}
	return validation(errs)
}

func (h *Handler) handleExec(w http.ResponseWriter, r *http.Request) error {
	sb, err := h.m.Get(r.PathValue("sandbox"))
	if err != nil {
		return problemFor(err)
	}
	req, err := DecodeExecRequest(r, h.maxTimeout)
	if err != nil {
		return err
	}
	spec := sandbox.ExecSpec{Cmd: req.Cmd, Args: req.Args, Env: req.Env, Cwd: req.Cwd}
	if req.Background {
		spec.OutputFile = req.OutputFile
		pid, err := sb.Start(r.Context(), spec)
		if err != nil {
			return execProblem(req.Cmd, err)
		}
		httpapi.WriteJSON(w, http.StatusAccepted, api.ExecStarted{PID: pid})
		return nil
	}
	if req.Stdin != "" {
		spec.Stdin = strings.NewReader(req.Stdin)
	}
	ctx := r.Context()
	if req.TimeoutS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutS*float64(time.Second)))
		defer cancel()
	}
	s := newEventStream(w, strings.Contains(r.Header.Get("Accept"), "text/event-stream"))
	code, err := sandbox.Exec(ctx, sb, spec, s.output(api.ExecEventStdout), s.output(api.ExecEventStderr))
	if err != nil && code < 0 && !s.begun() {
		// Nothing was sent yet and the process never ran: a plain problem.
		return execProblem(req.Cmd, err)
	}
	s.finish(code, err, req.Cmd)
	if err != nil && api.AsProblem(problemFor(err)).Kind() == api.KindInternal {
		h.log.ErrorContext(r.Context(), "sandbox exec", "sandbox", sb.ID(), "cmd", req.Cmd, "err", err)
	}
	return nil
}

// execProblem explains a failure to start a process.
func execProblem(cmd string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return api.FieldErrorf(api.KindValidation, "cmd", "command %q not found in the sandbox (or cwd does not exist): %v", cmd, err)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENOEXEC):
		return api.FieldErrorf(api.KindValidation, "cmd", "command %q cannot be executed: %v", cmd, err)
	}
	return problemFor(err)
}

// eventStream writes exec events as NDJSON or SSE, flushing each one. The
// response status is committed on the first event, so a process that fails
// to start can still be answered with a plain problem.
type eventStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sse bool

	mu      sync.Mutex // guards everything below, and writes to w
	started bool
	broken  bool              // the client went away
	pending map[string][]byte // per stream: an incomplete UTF-8 sequence held back
}

func newEventStream(w http.ResponseWriter, sse bool) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), sse: sse, pending: map[string][]byte{}}
}

func (s *eventStream) begun() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// start commits the response; call with s.mu held.
func (s *eventStream) start() {
	if s.started {
		return
	}
	s.started = true
	// The stream may outlive the server's read and write timeouts, which
	// are meant for ordinary requests; the body has been read already.
	_ = s.rc.SetReadDeadline(time.Time{})
	_ = s.rc.SetWriteDeadline(time.Time{})
	h := s.w.Header()
	if s.sse {
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", api.ExecStreamContentType)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
}

// emit writes one event; call with s.mu held.
func (s *eventStream) emit(ev api.ExecEvent) {
	s.start()
	if s.broken {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	var out []byte
	if s.sse {
		out = make([]byte, 0, len(b)+len(ev.Type)+16)
		out = append(out, "event: "...)
		out = append(out, ev.Type...)
		out = append(out, "\ndata: "...)
		out = append(out, b...)
		out = append(out, "\n\n"...)
	} else {
		out = append(b, '\n')
	}
	if _, err := s.w.Write(out); err != nil {
		s.broken = true
		return
	}
	if err := s.rc.Flush(); err != nil {
		s.broken = true
	}
}

// output returns the writer for one output stream.
func (s *eventStream) output(typ string) *streamWriter { return &streamWriter{s: s, typ: typ} }

type streamWriter struct {
	s   *eventStream
	typ string
}

// Write sends p as one event. A UTF-8 sequence split across writes is held
// back until it is complete, so that JSON strings carry the real text.
func (sw *streamWriter) Write(p []byte) (int, error) {
	s := sw.s
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := append(s.pending[sw.typ], p...)
	cut := completeUTF8(buf)
	s.pending[sw.typ] = append([]byte(nil), buf[cut:]...)
	if cut > 0 {
		s.emit(api.ExecEvent{Type: sw.typ, Data: string(buf[:cut])})
	}
	return len(p), nil
}

// completeUTF8 returns the length of b without a trailing incomplete (but
// so far valid) UTF-8 sequence.
func completeUTF8(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if !utf8.RuneStart(c) {
			continue
		}
		if c >= utf8.RuneSelf && !utf8.FullRune(b[len(b)-i:]) {
			return len(b) - i
		}
		break
	}
	return len(b)
}

// finish flushes held-back output and writes the final event.
func (s *eventStream) finish(code int, err error, cmd string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, typ := range []string{api.ExecEventStdout, api.ExecEventStderr} {
		if len(s.pending[typ]) > 0 {
			s.emit(api.ExecEvent{Type: typ, Data: string(s.pending[typ])})
			s.pending[typ] = nil
		}
	}
	limit := errors.Is(err, sandbox.ErrMemoryLimit) || errors.Is(err, sandbox.ErrPidsLimit) || errors.Is(err, sandbox.ErrDiskLimit)
	switch {
	case err == nil || (limit && code >= 0):
		ev := api.ExecEvent{Type: api.ExecEventExit, ExitCode: &code}
		if err != nil {
			ev.Problem = api.AsProblem(problemFor(err))
		}
		s.emit(ev)
	default:
		p := api.AsProblem(execProblem(cmd, err))
		if p.Kind() == api.KindInternal {
			p = api.Errorf(api.KindInternal, "exec %s failed", cmd)
		}
		s.emit(api.ExecEvent{Type: api.ExecEventError, Problem: p})
	}
}
