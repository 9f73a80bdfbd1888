package e2bhttp

// envd's process service (process.go). A process started through envd
// outlives the stream that started it, as in E2B: it runs until it exits,
// is signalled, or its sandbox goes; streams (Start, Connect) subscribe to
// its events. The sandbox runs it through a small shell prologue that
// reports the process's pid inside the sandbox on stderr before exec'ing
// the command, so the pid is known (and signals reach the command) on
// every tier without a new tier method.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// pidPrologue prints the shell's pid (the command's, after exec) as the
// first line of stderr, then runs the command ($0) with its arguments.
const pidPrologue = `printf 'E2BPID:%d\n' "$$" >&2; exec "$0" "$@"`

// Bounds of one sandbox's envd processes and of a start request.
const (
	maxProcsPerSandbox = 256
	maxArgs            = 4096
	maxCmdBytes        = 64 << 10
	maxTagBytes        = 256
)

// Wire types of the process service (proto3 JSON: camelCase names,
// bytes in base64, uint32 as numbers).
type (
	processConfig struct {
		Cmd  string            `json:"cmd"`
		Args []string          `json:"args,omitempty"`
		Envs map[string]string `json:"envs,omitempty"`
		Cwd  *string           `json:"cwd,omitempty"`
	}
	startRequest struct {
		Process processConfig   `json:"process"`
		PTY     json.RawMessage `json:"pty,omitempty"`
		Tag     *string         `json:"tag,omitempty"`
		Stdin   *bool           `json:"stdin,omitempty"`
	}
	selector struct {
		PID *uint32 `json:"pid,omitempty"`
		Tag *string `json:"tag,omitempty"`
	}
	processEvent struct {
		Start     *startEvent `json:"start,omitempty"`
		Data      *dataEvent  `json:"data,omitempty"`
		End       *endEvent   `json:"end,omitempty"`
		Keepalive *struct{}   `json:"keepalive,omitempty"`
	}
	startEvent struct {
		PID int `json:"pid"`
	}
	dataEvent struct {
		Stdout []byte `json:"stdout,omitempty"`
		Stderr []byte `json:"stderr,omitempty"`
		PTY    []byte `json:"pty,omitempty"`
	}
	endEvent struct {
		ExitCode int     `json:"exitCode"`
		Exited   bool    `json:"exited"`
		Status   string  `json:"status"`
		Error    *string `json:"error,omitempty"`
	}
	eventMessage struct {
		Event processEvent `json:"event"`
	}
	processInfo struct {
		Config processConfig `json:"config"`
		PID    int           `json:"pid"`
		Tag    *string       `json:"tag,omitempty"`
	}
)

// proc is one process started through envd.
type proc struct {
	sandbox string
	pid     int
	tag     string
	cfg     processConfig
	stdin   *io.PipeWriter   // nil without stdin
	term    sandbox.Terminal // set when the process runs on a terminal (pty.go)
	cancel  context.CancelFunc

	pidReady  chan struct{} // closed once pid is known, or the start failed
	readyOnce sync.Once
	done      chan struct{} // closed after the end event

	// outMu orders the output: it is held while an output write is
	// handled, so output before the pid line is published after it, in
	// order. Writers never wait for anything but subscribers under it.
	outMu sync.Mutex
	early []dataEvent // output before the pid was known
	ready bool        // the pid is known

	mu   sync.Mutex // guards subs, startErr, end
	subs map[*subscriber]struct{}
	// startErr is why the process never ran (before pidReady).
	startErr error
	end      endEvent
}

type subscriber struct {
	ch   chan processEvent
	gone chan struct{}
}

func (p *proc) markReady() { p.readyOnce.Do(func() { close(p.pidReady) }) }

func (p *proc) subscribe() *subscriber {
	s := &subscriber{ch: make(chan processEvent, 64), gone: make(chan struct{})}
	p.mu.Lock()
	p.subs[s] = struct{}{}
	p.mu.Unlock()
	return s
}

func (p *proc) unsubscribe(s *subscriber) {
	p.mu.Lock()
	delete(p.subs, s)
	p.mu.Unlock()
	close(s.gone)
}

// publish hands ev to every subscriber, waiting for slow ones (the
// process's output then waits too) unless they leave.
func (p *proc) publish(ev processEvent) {
	p.mu.Lock()
	subs := make([]*subscriber, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	p.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- ev:
		case <-s.gone:
		}
	}
}

// procTable holds the envd processes of every sandbox.
type procTable struct {
	mu sync.Mutex // guards bySandbox
	// bySandbox maps a sandbox id to its running processes by pid.
	bySandbox map[string]map[int]*proc
	wg        sync.WaitGroup
}

func newProcTable() *procTable { return &procTable{bySandbox: map[string]map[int]*proc{}} }

func (t *procTable) count(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bySandbox[id])
}

func (t *procTable) add(p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.bySandbox[p.sandbox]
	if m == nil {
		m = map[int]*proc{}
		t.bySandbox[p.sandbox] = m
	}
	m[p.pid] = p
}

func (t *procTable) remove(p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.bySandbox[p.sandbox]; m != nil && m[p.pid] == p {
		delete(m, p.pid)
		if len(m) == 0 {
			delete(t.bySandbox, p.sandbox)
		}
	}
}

// find returns the process sel names in sandbox id.
func (t *procTable) find(id string, sel selector) (*proc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case sel.PID != nil:
		if p := t.bySandbox[id][int(*sel.PID)]; p != nil {
			return p, nil
		}
		return nil, api.Errorf(api.KindNotFound, "no process with pid %d started through envd is running in sandbox %s", *sel.PID, id)
	case sel.Tag != nil:
		for _, p := range t.bySandbox[id] {
			if p.tag == *sel.Tag {
				return p, nil
			}
		}
		return nil, api.Errorf(api.KindNotFound, "no process tagged %q is running in sandbox %s", *sel.Tag, id)
	}
	return nil, api.FieldErrorf(api.KindValidation, "process", "select the process by pid or tag")
}

func (t *procTable) list(id string) []*proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*proc, 0, len(t.bySandbox[id]))
	for _, p := range t.bySandbox[id] {
		out = append(out, p)
	}
	return out
}

// closeSandbox stops the processes of sandbox id (it is being deleted).
func (t *procTable) closeSandbox(id string) {
	for _, p := range t.list(id) {
		p.cancel()
	}
}

func (t *procTable) closeAll() {
	t.mu.Lock()
	var all []*proc
	for _, m := range t.bySandbox {
		for _, p := range m {
			all = append(all, p)
		}
	}
	t.mu.Unlock()
	for _, p := range all {
		p.cancel()
	}
	t.wg.Wait()
}

// validateStart checks a start request; every failure names the field.
func validateStart(req startRequest) error {
	c := req.Process
	switch {
	case c.Cmd == "":
		return api.FieldErrorf(api.KindValidation, "process.cmd", "is required")
	case len(c.Cmd) > maxCmdBytes || strings.ContainsRune(c.Cmd, 0):
		return api.FieldErrorf(api.KindValidation, "process.cmd", "must be at most %d bytes without NUL", maxCmdBytes)
	case len(c.Args) > maxArgs:
		return api.FieldErrorf(api.KindValidation, "process.args", "at most %d arguments", maxArgs)
	case c.Cwd != nil && *c.Cwd != "" && (!strings.HasPrefix(*c.Cwd, "/") || strings.ContainsRune(*c.Cwd, 0)):
		return api.FieldErrorf(api.KindValidation, "process.cwd", "must be an absolute path inside the sandbox")
	case req.Tag != nil && (len(*req.Tag) > maxTagBytes || strings.ContainsRune(*req.Tag, 0)):
		return api.FieldErrorf(api.KindValidation, "tag", "must be at most %d bytes without NUL", maxTagBytes)
	}
	if _, err := parsePTY(req.PTY); err != nil {
		return err
	}
	size := len(c.Cmd)
	for i, a := range c.Args {
		size += len(a)
		if strings.ContainsRune(a, 0) || size > 1<<20 {
			return api.FieldErrorf(api.KindValidation, "process.args["+strconv.Itoa(i)+"]", "arguments must be without NUL, at most 1 MiB in all")
		}
	}
	return checkEnv("process.envs", c.Envs)
}

// start runs req in sb and returns the process once its pid is known. The
// process outlives the request (rctx) but its sandbox.exec span joins the
// request's trace.
func (h *Handler) start(rctx context.Context, sb sandbox.Sandbox, req startRequest) (*proc, *subscriber, error) {
	if err := validateStart(req); err != nil {
		return nil, nil, err
	}
	if h.procs.count(sb.ID()) >= maxProcsPerSandbox {
		return nil, nil, api.Errorf(api.KindSandboxLimit, "sandbox %s runs %d processes started through envd, the most allowed", sb.ID(), maxProcsPerSandbox)
	}
	ctx, cancel := context.WithCancel(telemetry.Detach(rctx))
	p := &proc{sandbox: sb.ID(), cfg: req.Process, cancel: cancel, pidReady: make(chan struct{}), done: make(chan struct{}),
		subs: map[*subscriber]struct{}{}}
	if req.Tag != nil {
		p.tag = *req.Tag
	}
	spec := sandbox.ExecSpec{Cmd: "/bin/sh", Args: append([]string{"-c", pidPrologue, req.Process.Cmd}, req.Process.Args...),
		Env: req.Process.Envs}
	if req.Process.Cwd != nil {
		spec.Cwd = *req.Process.Cwd
	}
	if size, _ := parsePTY(req.PTY); size != nil {
		spec.Cmd, spec.Args = req.Process.Cmd, req.Process.Args
		return h.startTerminal(ctx, sb, p, spec, *size)
	}
	if req.Stdin != nil && *req.Stdin {
		var pr *io.PipeReader
		pr, p.stdin = io.Pipe()
		spec.Stdin = pr
	}
	sub := p.subscribe()
	h.procs.wg.Add(1)
	go h.run(ctx, sb, p, spec)
	<-p.pidReady
	p.mu.Lock()
	err := p.startErr
	p.mu.Unlock()
	if err != nil {
		p.unsubscribe(sub)
		return nil, nil, err
	}
	return p, sub, nil
}

// run runs the process to its end and publishes its events.
func (h *Handler) run(ctx context.Context, sb sandbox.Sandbox, p *proc, spec sandbox.ExecSpec) {
	defer h.procs.wg.Done()
	defer p.cancel()
	stderr := &pidReader{p: p, table: h.procs}
	code, err := sandbox.Exec(ctx, sb, spec, &dataWriter{p: p, stdout: true}, stderr)
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	if !stderr.found {
		// The prologue never ran (no /bin/sh, a limit, a paused sandbox).
		p.mu.Lock()
		p.startErr = startProblem(code, err)
		p.mu.Unlock()
		p.markReady()
		close(p.done)
		return
	}
	end := endEvent{ExitCode: code, Exited: err == nil && code >= 0 && code < 128, Status: fmt.Sprintf("exit status %d", code)}
	if code >= 128 && err == nil {
		end.Status = "signal: " + syscall.Signal(code-128).String()
	}
	if err != nil {
		msg := api.AsProblem(sandboxhttp.ProblemFor(err)).Detail
		end.Error = &msg
	}
	p.mu.Lock()
	p.end = end
	p.mu.Unlock()
	h.procs.remove(p)
	p.publish(processEvent{End: &end})
	close(p.done)
}

func startProblem(code int, err error) error {
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	return api.Errorf(api.KindBadRequest, "the process could not be started in the sandbox (exit %d): /bin/sh is needed", code)
}

// dataWriter publishes a stream of the process's output; output before
// the pid is known waits in early.
type dataWriter struct {
	p      *proc
	stdout bool
}

func (d *dataWriter) Write(b []byte) (int, error) {
	d.p.outMu.Lock()
	defer d.p.outMu.Unlock()
	d.p.output(d.stdout, b)
	return len(b), nil
}

// output publishes or holds back b; call with outMu held.
func (p *proc) output(stdout bool, b []byte) {
	ev := dataEvent{Stderr: append([]byte(nil), b...)}
	if stdout {
		ev = dataEvent{Stdout: ev.Stderr}
	}
	if !p.ready {
		p.early = append(p.early, ev)
		return
	}
	p.publish(processEvent{Data: &ev})
}

// pidReader is the stderr writer: it takes the prologue's first line (the
// pid), registers the process, publishes the output held back so far and
// passes everything after the line on.
type pidReader struct {
	p     *proc
	table *procTable
	buf   []byte
	found bool
}

func (w *pidReader) Write(b []byte) (int, error) {
	p := w.p
	p.outMu.Lock()
	defer p.outMu.Unlock()
	if w.found {
		p.output(false, b)
		return len(b), nil
	}
	w.buf = append(w.buf, b...)
	line, after, ok := strings.Cut(string(w.buf), "\n")
	if !ok {
		if len(w.buf) > 64 {
			return 0, fmt.Errorf("e2b: no pid line on stderr")
		}
		return len(b), nil
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "E2BPID:"))
	if !strings.HasPrefix(line, "E2BPID:") || err != nil || pid <= 0 {
		return 0, fmt.Errorf("e2b: malformed pid line on stderr")
	}
	w.found, p.pid, p.ready = true, pid, true
	w.table.add(p)
	p.markReady()
	for _, ev := range p.early {
		p.publish(processEvent{Data: &ev})
	}
	p.early = nil
	if after != "" {
		p.output(false, []byte(after))
	}
	return len(b), nil
}

// serveEvents streams p's events to the client from sub, starting with
// its start event, until the process ends or the client goes; with a
// deadline (Connect-Timeout-Ms), kill ends the process when it passes.
func serveEvents(w http.ResponseWriter, r *http.Request, p *proc, sub *subscriber, kill func()) error {
	defer p.unsubscribe(sub)
	var deadline <-chan time.Time
	if ms, err := strconv.ParseInt(r.Header.Get("Connect-Timeout-Ms"), 10, 64); err == nil && ms > 0 {
		t := time.NewTimer(time.Duration(min(ms, 1<<40)) * time.Millisecond)
		defer t.Stop()
		deadline = t.C
	}
	s := startStream(w)
	if !s.send(eventMessage{Event: processEvent{Start: &startEvent{PID: p.pid}}}) {
		return nil
	}
	tick := time.NewTicker(keepaliveInterval(r))
	defer tick.Stop()
	for {
		select {
		case ev := <-sub.ch:
			if !s.send(eventMessage{Event: ev}) {
				return nil
			}
			if ev.End != nil {
				s.end(nil)
				return nil
			}
		case <-tick.C:
			if !s.send(eventMessage{Event: processEvent{Keepalive: &struct{}{}}}) {
				return nil
			}
		case <-deadline:
			if kill != nil {
				kill()
			}
			s.end(api.Errorf(api.KindTimeout, "the call's timeout (Connect-Timeout-Ms) passed"))
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

func (h *Handler) rpcStart(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req startRequest
	if err := readEnvelope(r, &req); err != nil {
		return err
	}
	p, sub, err := h.start(r.Context(), sb, req)
	if err != nil {
		return err
	}
	return serveEvents(w, r, p, sub, func() { _ = sb.Signal(context.Background(), p.pid, syscall.SIGKILL) })
}

func (h *Handler) rpcConnect(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req struct {
		Process selector `json:"process"`
	}
	if err := readEnvelope(r, &req); err != nil {
		return err
	}
	p, err := h.procs.find(sb.ID(), req.Process)
	if err != nil {
		return err
	}
	return serveEvents(w, r, p, p.subscribe(), nil)
}

func (h *Handler) rpcList(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	if err := readUnary(r, &struct{}{}); err != nil {
		return err
	}
	out := struct {
		Processes []processInfo `json:"processes"`
	}{Processes: []processInfo{}}
	for _, p := range h.procs.list(sb.ID()) {
		pi := processInfo{Config: p.cfg, PID: p.pid}
		if p.tag != "" {
			pi.Tag = &p.tag
		}
		out.Processes = append(out.Processes, pi)
	}
	writeUnary(w, out)
	return nil
}

func (h *Handler) rpcSendInput(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req struct {
		Process selector `json:"process"`
		Input   struct {
			Stdin []byte `json:"stdin"`
			PTY   []byte `json:"pty"`
		} `json:"input"`
	}
	if err := readUnary(r, &req); err != nil {
		return err
	}
	p, err := h.procs.find(sb.ID(), req.Process)
	if err != nil {
		return err
	}
	if p.term != nil {
		if _, err := p.term.Write(req.Input.PTY); err != nil {
			return api.Errorf(api.KindConflict, "process %d: its terminal is closed", p.pid)
		}
		writeUnary(w, struct{}{})
		return nil
	}
	if p.stdin == nil {
		return api.FieldErrorf(api.KindValidation, "process", "process %d was started without stdin (start it with stdin: true)", p.pid)
	}
	if _, err := p.stdin.Write(req.Input.Stdin); err != nil {
		return api.Errorf(api.KindConflict, "process %d: stdin is closed", p.pid)
	}
	writeUnary(w, struct{}{})
	return nil
}

func (h *Handler) rpcCloseStdin(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req struct {
		Process selector `json:"process"`
	}
	if err := readUnary(r, &req); err != nil {
		return err
	}
	p, err := h.procs.find(sb.ID(), req.Process)
	if err != nil {
		return err
	}
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	writeUnary(w, struct{}{})
	return nil
}

// signals maps envd's signal enum to the signal sent.
var signals = map[string]syscall.Signal{"SIGNAL_SIGTERM": syscall.SIGTERM, "SIGNAL_SIGKILL": syscall.SIGKILL,
	"15": syscall.SIGTERM, "9": syscall.SIGKILL}

func (h *Handler) rpcSendSignal(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req struct {
		Process selector        `json:"process"`
		Signal  json.RawMessage `json:"signal"`
	}
	if err := readUnary(r, &req); err != nil {
		return err
	}
	sig, ok := signals[strings.Trim(string(req.Signal), `"`)]
	if !ok {
		return api.FieldErrorf(api.KindValidation, "signal", "want SIGNAL_SIGTERM or SIGNAL_SIGKILL")
	}
	p, err := h.procs.find(sb.ID(), req.Process)
	if err != nil {
		return err
	}
	if err := sb.Signal(r.Context(), p.pid, sig); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	writeUnary(w, struct{}{})
	return nil
}
