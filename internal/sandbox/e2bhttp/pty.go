package e2bhttp

// Terminals through envd (pty.go): a Start with pty.size runs the command
// on a terminal made inside the sandbox (sandbox.Terminaler), its output
// published as data.pty events; SendInput's input.pty types on it, and
// Update resizes it. Both tiers have terminals (a gVisor sandbox's are
// its exec agent's, so one without python3 has none); where there are
// none a pty start is a 400.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"syscall"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

// ptyConfig is envd's PTY message: {"size": {"cols": C, "rows": R}}.
type ptyConfig struct {
	Size *struct {
		Cols int `json:"cols"`
		Rows int `json:"rows"`
	} `json:"size"`
}

// parsePTY reads a start or update request's pty field: nil when absent.
func parsePTY(raw json.RawMessage) (*sandbox.WindowSize, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c ptyConfig
	if err := json.Unmarshal(raw, &c); err != nil || c.Size == nil {
		return nil, api.FieldErrorf(api.KindValidation, "pty", `want {"size": {"cols": C, "rows": R}}`)
	}
	if c.Size.Rows < 1 || c.Size.Rows > sandbox.MaxTerminalRows || c.Size.Cols < 1 || c.Size.Cols > sandbox.MaxTerminalCols {
		return nil, api.FieldErrorf(api.KindValidation, "pty.size", "rows and cols must be from 1 to %d", sandbox.MaxTerminalRows)
	}
	return &sandbox.WindowSize{Rows: uint16(c.Size.Rows), Cols: uint16(c.Size.Cols)}, nil
}

// startTerminal runs p on a terminal; the pid is known at once.
func (h *Handler) startTerminal(ctx context.Context, sb sandbox.Sandbox, p *proc, spec sandbox.ExecSpec, size sandbox.WindowSize) (*proc, *subscriber, error) {
	tm, ok := sb.(sandbox.Terminaler)
	if !ok {
		p.cancel()
		return nil, nil, api.FieldErrorf(api.KindBadRequest, "pty", "the %s tier has no terminals yet; start the process without pty", sb.Tier())
	}
	term, err := tm.Terminal(ctx, spec, size)
	if err != nil {
		p.cancel()
		return nil, nil, sandboxhttp.ProblemFor(err)
	}
	p.term, p.pid, p.ready = term, term.PID(), true
	sub := p.subscribe()
	h.procs.add(p)
	p.markReady()
	h.procs.wg.Add(1)
	go h.runTerminal(ctx, p)
	return p, sub, nil
}

// runTerminal publishes the terminal's output, then its end.
func (h *Handler) runTerminal(ctx context.Context, p *proc) {
	defer h.procs.wg.Done()
	defer p.cancel()
	go func() {
		<-ctx.Done() // the sandbox or the node closes: hang up
		_ = p.term.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := p.term.Read(buf)
		if n > 0 {
			p.publish(processEvent{Data: &dataEvent{PTY: append([]byte(nil), buf[:n]...)}})
		}
		if err != nil {
			break
		}
	}
	code, err := p.term.Wait(context.WithoutCancel(ctx))
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

func (h *Handler) rpcUpdate(w http.ResponseWriter, r *http.Request, c caller, sb sandbox.Sandbox) error {
	var req struct {
		Process selector        `json:"process"`
		PTY     json.RawMessage `json:"pty"`
	}
	if err := readUnary(r, &req); err != nil {
		return err
	}
	size, err := parsePTY(req.PTY)
	if err != nil {
		return err
	}
	p, err := h.procs.find(sb.ID(), req.Process)
	if err != nil {
		return err
	}
	if size != nil {
		if p.term == nil {
			return api.FieldErrorf(api.KindValidation, "process", "process %d has no terminal (it was started without pty)", p.pid)
		}
		if err := p.term.Resize(*size); err != nil {
			return sandboxhttp.ProblemFor(err)
		}
	}
	writeUnary(w, struct{}{})
	return nil
}
