package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

func sandboxPath(id string) string { return "/v1/sandboxes/" + url.PathEscape(id) }

// CreateSandbox creates a sandbox.
func (c *Client) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (*api.Sandbox, error) {
	var s api.Sandbox
	if err := c.Do(ctx, http.MethodPost, "/v1/sandboxes", req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Sandboxes lists live sandboxes.
func (c *Client) Sandboxes(ctx context.Context) ([]api.Sandbox, error) {
	var l api.SandboxList
	return l.Sandboxes, c.Do(ctx, http.MethodGet, "/v1/sandboxes", nil, &l)
}

// Sandbox describes one sandbox.
func (c *Client) Sandbox(ctx context.Context, id string) (*api.Sandbox, error) {
	var s api.Sandbox
	if err := c.Do(ctx, http.MethodGet, sandboxPath(id), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeleteSandbox kills a sandbox's processes and frees it.
func (c *Client) DeleteSandbox(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, sandboxPath(id), nil, nil)
}

// ExtendSandbox makes the sandbox expire timeoutS seconds from now.
func (c *Client) ExtendSandbox(ctx context.Context, id string, timeoutS float64) (*api.Sandbox, error) {
	return c.sandboxOp(ctx, id, "/extend", api.ExtendSandboxRequest{TimeoutS: timeoutS})
}

// PauseSandbox freezes every process of a sandbox.
func (c *Client) PauseSandbox(ctx context.Context, id string) (*api.Sandbox, error) {
	return c.sandboxOp(ctx, id, "/pause", nil)
}

// ResumeSandbox thaws a paused sandbox.
func (c *Client) ResumeSandbox(ctx context.Context, id string) (*api.Sandbox, error) {
	return c.sandboxOp(ctx, id, "/resume", nil)
}

// StartSandbox runs a stopped sandbox (after a daemon restart) again with
// its files.
func (c *Client) StartSandbox(ctx context.Context, id string) (*api.Sandbox, error) {
	return c.sandboxOp(ctx, id, "/start", nil)
}

// ForkSandbox makes count copies of a sandbox with its files.
func (c *Client) ForkSandbox(ctx context.Context, id string, count int) ([]api.Sandbox, error) {
	return c.ForkSandboxWith(ctx, id, api.ForkSandboxRequest{Count: count})
}

// ForkSandboxWith is ForkSandbox with every option of the request (paused
// copies).
func (c *Client) ForkSandboxWith(ctx context.Context, id string, req api.ForkSandboxRequest) ([]api.Sandbox, error) {
	var out api.SandboxList
	if err := c.Do(ctx, http.MethodPost, sandboxPath(id)+"/fork", req, &out); err != nil {
		return nil, err
	}
	return out.Sandboxes, nil
}

func (c *Client) sandboxOp(ctx context.Context, id, op string, in any) (*api.Sandbox, error) {
	var s api.Sandbox
	if err := c.Do(ctx, http.MethodPost, sandboxPath(id)+op, in, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ExecStream is the output of a running command, read event by event.
type ExecStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	done bool
}

// ExecStream starts a command (req.Background must be false) and returns its
// event stream; the caller closes it. Cancelling ctx kills the command.
func (c *Client) ExecStream(ctx context.Context, id string, req api.ExecRequest) (*ExecStream, error) {
	if req.Background {
		return nil, errors.New("exec stream: background commands have no stream; use StartProcess")
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	resp, err := c.Raw(ctx, http.MethodPost, sandboxPath(id)+"/exec", bytes.NewReader(b), "application/json")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return &ExecStream{body: resp.Body, sc: sc}, nil
}

// Next returns the next event. After the final exit or error event it
// returns io.EOF. A stream that ends without a final event is an error.
func (s *ExecStream) Next() (api.ExecEvent, error) {
	var ev api.ExecEvent
	if s.done {
		return ev, io.EOF
	}
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return ev, fmt.Errorf("exec stream: decode event: %w", err)
		}
		if ev.Type == api.ExecEventExit || ev.Type == api.ExecEventError {
			s.done = true
		}
		return ev, nil
	}
	if err := s.sc.Err(); err != nil {
		return ev, fmt.Errorf("exec stream: %w", err)
	}
	return ev, fmt.Errorf("exec stream ended without an exit event: %w", io.ErrUnexpectedEOF)
}

// Close releases the stream; a command still running is killed.
func (s *ExecStream) Close() error { return s.body.Close() }

// Exec runs a command to completion, copying its output to stdout and
// stderr (either may be nil) as it arrives, and returns its exit code. err
// is the *api.Problem of an error event, or of a resource limit the command
// hit (with its exit code still returned); a non-zero exit is not an error.
func (c *Client) Exec(ctx context.Context, id string, req api.ExecRequest, stdout, stderr io.Writer) (int, error) {
	s, err := c.ExecStream(ctx, id, req)
	if err != nil {
		return -1, err
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err != nil {
			return -1, err
		}
		switch ev.Type {
		case api.ExecEventStdout:
			if stdout != nil {
				_, _ = io.WriteString(stdout, ev.Data)
			}
		case api.ExecEventStderr:
			if stderr != nil {
				_, _ = io.WriteString(stderr, ev.Data)
			}
		case api.ExecEventExit:
			code := -1
			if ev.ExitCode != nil {
				code = *ev.ExitCode
			}
			if ev.Problem != nil {
				return code, ev.Problem
			}
			return code, nil
		case api.ExecEventError:
			if ev.Problem == nil {
				return -1, errors.New("exec: error event without a problem")
			}
			return -1, ev.Problem
		}
	}
}

// StartProcess starts a background command and returns its pid inside the
// sandbox. req.OutputFile, if set, receives its output.
func (c *Client) StartProcess(ctx context.Context, id string, req api.ExecRequest) (int, error) {
	req.Background = true
	var st api.ExecStarted
	if err := c.Do(ctx, http.MethodPost, sandboxPath(id)+"/exec", req, &st); err != nil {
		return -1, err
	}
	return st.PID, nil
}

// Processes lists the processes running in a sandbox.
func (c *Client) Processes(ctx context.Context, id string) ([]api.SandboxProcess, error) {
	var l api.ProcessList
	return l.Processes, c.Do(ctx, http.MethodGet, sandboxPath(id)+"/processes", nil, &l)
}

// Signal sends a signal ("TERM", "KILL", ...) to a process in a sandbox.
func (c *Client) Signal(ctx context.Context, id string, pid int, signal string) error {
	return c.Do(ctx, http.MethodPost, sandboxPath(id)+"/processes/"+strconv.Itoa(pid)+"/signal",
		api.SignalRequest{Signal: signal}, nil)
}

func filePath(id, op, path string) string {
	return sandboxPath(id) + "/files" + op + "?path=" + url.QueryEscape(path)
}

// WriteFile uploads r to path in a sandbox (under /workspace or /tmp),
// replacing any file there. perm 0 means 0644.
func (c *Client) WriteFile(ctx context.Context, id, path string, r io.Reader, perm uint32) (*api.SandboxFile, error) {
	p := filePath(id, "", path)
	if perm != 0 {
		p += "&mode=" + strconv.FormatUint(uint64(perm&0o777), 8)
	}
	resp, err := c.Raw(ctx, http.MethodPut, p, r, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var f api.SandboxFile
	if err := decodeJSON(resp.Body, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// ReadFile downloads a file from a sandbox; the caller closes it.
func (c *Client) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	resp, err := c.Raw(ctx, http.MethodGet, filePath(id, "", path), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// ListFiles lists a directory in a sandbox ("" is /workspace).
func (c *Client) ListFiles(ctx context.Context, id, path string) ([]api.SandboxFile, error) {
	var l api.FileList
	return l.Files, c.Do(ctx, http.MethodGet, filePath(id, "/list", path), nil, &l)
}

// StatFile describes a file in a sandbox.
func (c *Client) StatFile(ctx context.Context, id, path string) (*api.SandboxFile, error) {
	var f api.SandboxFile
	if err := c.Do(ctx, http.MethodGet, filePath(id, "/stat", path), nil, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// Mkdir creates a directory (with parents) in a sandbox.
func (c *Client) Mkdir(ctx context.Context, id, path string) (*api.SandboxFile, error) {
	var f api.SandboxFile
	if err := c.Do(ctx, http.MethodPost, filePath(id, "/mkdir", path), nil, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// RemoveFile removes a file or directory tree in a sandbox.
func (c *Client) RemoveFile(ctx context.Context, id, path string) error {
	return c.Do(ctx, http.MethodDelete, filePath(id, "", path), nil, nil)
}

// PortProxy returns a handler that forwards every request (HTTP and
// WebSocket) to port of sandbox id through the API, with the client's
// credentials: agentcloud sandbox port-forward serves it locally.
func (c *Client) PortProxy(id string, port int) http.Handler {
	prefix := fmt.Sprintf("/v1/sandboxes/%s/ports/%d", url.PathEscape(id), port)
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(c.base)
			pr.Out.URL.Path = strings.TrimSuffix(c.base.Path, "/") + prefix + pr.In.URL.Path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = c.base.Host
			pr.Out.Header.Del("Authorization")
			if c.token != "" {
				pr.Out.Header.Set("Authorization", "Bearer "+c.token)
			}
		},
		Transport: c.hc.Transport,
	}
}

// CreatePortURL makes a public, signed, expiring URL of a port of a
// sandbox (relative to the API's address).
func (c *Client) CreatePortURL(ctx context.Context, id string, req api.PortURLRequest) (*api.PortURL, error) {
	var out api.PortURL
	if err := c.Do(ctx, http.MethodPost, "/v1/sandboxes/"+url.PathEscape(id)+"/port-urls", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
