package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ToolsOptions configure Tools.
type ToolsOptions struct {
	Target
	// N is the number of MCP calls of the no-op tool.
	N int
	// RunCode is the number of run_code calls (0 skips them).
	RunCode int
}

// ToolsResult is the result of Tools (`agentcloud bench tools`). Every call
// goes through /mcp over loopback HTTP with the go-sdk client, as an MCP
// client sees it: authentication, Cedar, rate limits, schema validation,
// audit.
type ToolsResult struct {
	N int `json:"n"`
	// MCPCall is tools/call of the built-in no-op tool "ping" with Caller's
	// credentials (in-process: the local admin token, as `agentcloud mcp
	// stdio` on the daemon's own machine uses).
	MCPCallP50Us float64 `json:"mcp_call_p50_us"`
	MCPCallP99Us float64 `json:"mcp_call_p99_us"`
	// MCPCallUserJWT is the same as a user with a JWT-SVID (in-process
	// only): token verification, including its revocation lookup, is on
	// the path.
	MCPCallUserJWTP50Us float64 `json:"mcp_call_user_jwt_p50_us,omitempty"`
	MCPCallUserJWTP99Us float64 `json:"mcp_call_user_jwt_p99_us,omitempty"`
	// MCPList is tools/list.
	MCPListP50Us float64 `json:"mcp_list_p50_us"`
	// RunCodePython is run_code {"language":"python","code":"print(1)"}:
	// a sandbox from the warm pool, the code written and run, its files
	// listed, the sandbox deleted.
	RunCode             int     `json:"run_code_n"`
	RunCodePythonP50Ms  float64 `json:"run_code_python_p50_ms"`
	RunCodePythonP99Ms  float64 `json:"run_code_python_p99_ms"`
	ExecPythonP50Ms     float64 `json:"exec_python_p50_ms"` // the same through /v1/sandboxes (create + exec), for reference
	RunCodeOverExecRate float64 `json:"run_code_over_exec_python"`
	Caller              string  `json:"caller"`
	Errors              int64   `json:"errors"`
	FirstError          string  `json:"first_error,omitempty"`
	InProcess           bool    `json:"in_process_daemon"`
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

// toolsRun is one run of Tools.
type toolsRun struct {
	ToolsOptions
	n    *node
	errs errCount
}

// Tools measures MCP tool calls over loopback HTTP and run_code.
func Tools(ctx context.Context, opts ToolsOptions) (*ToolsResult, error) {
	if opts.N < 1 || opts.RunCode < 0 {
		return nil, errors.New("bench tools: N must be positive and RunCode not negative")
	}
	// A limit far above what one client reaches: the limiter stays on the
	// path without refusing the benchmark's calls.
	n, err := connect(ctx, opts.Target, 2, func(cfg *config.Config) {
		cfg.ToolCallsPerSecond, cfg.ToolCallBurst = 1e6, 1e6
	})
	if err != nil {
		return nil, err
	}
	defer n.stop()
	res := &ToolsResult{N: opts.N, RunCode: opts.RunCode, InProcess: n.inProcess, Caller: "the --token principal"}
	r := &toolsRun{ToolsOptions: opts, n: n}
	userToken := ""
	if n.inProcess {
		res.Caller = "admin (bootstrap token)"
		tok, err := n.c.CreateToken(ctx, api.TokenRequest{Subject: "user:bench", TTL: "1h"})
		if err != nil {
			return nil, fmt.Errorf("token for the benchmark user: %w", err)
		}
		userToken = tok.Token
	}
	cs, err := r.connect(ctx, n.token)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	if _, err := call(ctx, cs, "ping", nil); err != nil {
		return nil, fmt.Errorf("call ping: %w", err)
	}
	lat := r.pings(ctx, cs)
	res.MCPCallP50Us, res.MCPCallP99Us = pct(lat, 50), pct(lat, 99)
	if userToken != "" {
		ucs, err := r.connect(ctx, userToken)
		if err != nil {
			return nil, err
		}
		ul := r.pings(ctx, ucs)
		_ = ucs.Close()
		res.MCPCallUserJWTP50Us, res.MCPCallUserJWTP99Us = pct(ul, 50), pct(ul, 99)
	}
	lat = lat[:0]
	for range min(opts.N, 500) {
		t0 := time.Now()
		if _, err := cs.ListTools(ctx, nil); err != nil {
			r.errs.add(err)
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	res.MCPListP50Us = pct(lat, 50)
	if opts.RunCode > 0 {
		if err := r.runCode(ctx, res, cs); err != nil {
			return nil, err
		}
	}
	res.Errors, res.FirstError = r.errs.n.Load(), r.errs.first
	return res, nil
}

// connect opens an MCP session to /mcp with token.
func (r *toolsRun) connect(ctx context.Context, token string) (*mcp.ClientSession, error) {
	hc := &http.Client{Transport: bearer{token, &http.Transport{MaxIdleConnsPerHost: 4}}}
	cl := mcp.NewClient(&mcp.Implementation{Name: "agentcloud-bench", Version: "1"}, nil)
	cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: strings.TrimSuffix(r.n.c.Server(), "/") + "/mcp",
		HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to /mcp: %w", err)
	}
	return cs, nil
}

// call calls a tool; a tool error is an error.
func call(ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any) (*mcp.CallToolResult, error) {
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err == nil && r.IsError {
		b, _ := json.Marshal(r.StructuredContent)
		err = fmt.Errorf("%s: tool error %s", name, b)
	}
	return r, err
}

// pings times N calls of ping after warming up.
func (r *toolsRun) pings(ctx context.Context, cs *mcp.ClientSession) []time.Duration {
	for range min(200, r.N) { // warm connections and caches
		_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"})
	}
	lat := make([]time.Duration, 0, r.N)
	for range r.N {
		t0 := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"})
		if err == nil && res.IsError {
			err = fmt.Errorf("ping: %s", textOf(res))
		}
		if err != nil {
			r.errs.add(err)
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	return lat
}

// runCode times run_code python, and the same through /v1/sandboxes.
func (r *toolsRun) runCode(ctx context.Context, res *ToolsResult, cs *mcp.ClientSession) error {
	py := map[string]any{"language": "python", "code": "print(1)"}
	if _, err := call(ctx, cs, "run_code", py); err != nil {
		return fmt.Errorf("run_code: %w", err)
	}
	var rc, ex []time.Duration
	for range r.RunCode {
		time.Sleep(50 * time.Millisecond) // let the warm pool refill, as between real calls
		t0 := time.Now()
		out, err := call(ctx, cs, "run_code", py)
		if err == nil && !strings.Contains(textOf(out), "1\n") {
			err = fmt.Errorf("run_code printed %q", textOf(out))
		}
		if err != nil {
			r.errs.add(err)
			continue
		}
		rc = append(rc, time.Since(t0))
	}
	c := r.n.c
	for range r.RunCode {
		time.Sleep(50 * time.Millisecond)
		t0 := time.Now()
		sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: api.SandboxTierProcess})
		if err != nil {
			r.errs.add(err)
			continue
		}
		var out bytes.Buffer
		code, err := c.Exec(ctx, sb.ID, pythonExec, &out, &out)
		if err == nil && code != 0 {
			err = fmt.Errorf("python3 exited %d", code)
		}
		if err != nil {
			r.errs.add(err)
		} else {
			ex = append(ex, time.Since(t0))
		}
		_ = c.DeleteSandbox(context.WithoutCancel(ctx), sb.ID)
	}
	res.RunCodePythonP50Ms, res.RunCodePythonP99Ms = ms(pct(rc, 50)), ms(pct(rc, 99))
	res.ExecPythonP50Ms = ms(pct(ex, 50))
	if res.ExecPythonP50Ms > 0 {
		res.RunCodeOverExecRate = float64(int(res.RunCodePythonP50Ms/res.ExecPythonP50Ms*100)) / 100
	}
	return nil
}

// textOf joins a tool result's text content.
func textOf(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
