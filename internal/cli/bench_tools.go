package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

// ToolsBench is the result of `agentcloud bench tools`. Every call goes
// through /mcp over loopback HTTP with the go-sdk client, as an MCP client
// sees it: authentication, Cedar, rate limits, schema validation, audit.
type ToolsBench struct {
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

func newBenchToolsCmd(g *globals) *cobra.Command {
	var (
		n, runs int
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Benchmark MCP tool calls over loopback HTTP and run_code",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 || runs < 0 {
				return fmt.Errorf("--n must be positive and --run-code not negative")
			}
			res, err := benchTools(cmd.Context(), g, n, runs)
			if err != nil {
				return err
			}
			return g.printBench(res, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&n, "n", 2000, "MCP calls of the no-op tool")
	f.IntVar(&runs, "run-code", 30, "run_code calls (0 skips them)")
	f.BoolVar(&asJSON, "json", false, "print JSON (same as --output json)")
	return cmd
}

type benchBearer struct {
	token string
	rt    http.RoundTripper
}

func (b benchBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

func benchTools(ctx context.Context, g *globals, n, runs int) (*ToolsBench, error) {
	res := &ToolsBench{N: n, RunCode: runs}
	// A limit far above what one client reaches: the limiter stays on the
	// path without refusing the benchmark's calls.
	var dir string
	c, stop, inProcess, err := benchDaemon(ctx, g, 2, func(cfg *config.Config) {
		cfg.ToolCallsPerSecond, cfg.ToolCallBurst = 1e6, 1e6
		dir = cfg.Data
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	res.InProcess = inProcess
	token := g.credentials().token
	res.Caller = "the --token principal"
	userToken := ""
	if inProcess {
		b, err := os.ReadFile(filepath.Join(dir, auth.TokenFile))
		if err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
		token, res.Caller = strings.TrimSpace(string(b)), "admin (bootstrap token)"
		tok, err := c.CreateToken(ctx, api.TokenRequest{Subject: "user:bench", TTL: "1h"})
		if err != nil {
			return nil, fmt.Errorf("token for the benchmark user: %w", err)
		}
		userToken = tok.Token
	}
	connect := func(token string) (*mcp.ClientSession, error) {
		hc := &http.Client{Transport: benchBearer{token, &http.Transport{MaxIdleConnsPerHost: 4}}}
		cl := mcp.NewClient(&mcp.Implementation{Name: "agentcloud-bench", Version: "1"}, nil)
		cs, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: strings.TrimSuffix(c.Server(), "/") + "/mcp",
			HTTPClient: hc, DisableStandaloneSSE: true}, nil)
		if err != nil {
			return nil, fmt.Errorf("connect to /mcp: %w", err)
		}
		return cs, nil
	}
	cs, err := connect(token)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	var errs benchErrs
	call := func(name string, args map[string]any) (*mcp.CallToolResult, error) {
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err == nil && r.IsError {
			b, _ := json.Marshal(r.StructuredContent)
			err = fmt.Errorf("%s: tool error %s", name, b)
		}
		return r, err
	}
	if _, err := call("ping", nil); err != nil {
		return nil, fmt.Errorf("call ping: %w", err)
	}
	pings := func(cs *mcp.ClientSession) []time.Duration {
		for range min(200, n) { // warm connections and caches
			_, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"})
		}
		lat := make([]time.Duration, 0, n)
		for range n {
			t0 := time.Now()
			r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"})
			if err == nil && r.IsError {
				err = fmt.Errorf("ping: %s", mustTextOf(r))
			}
			if err != nil {
				errs.add(err)
				continue
			}
			lat = append(lat, time.Since(t0))
		}
		return lat
	}
	lat := pings(cs)
	res.MCPCallP50Us, res.MCPCallP99Us = pct(lat, 50), pct(lat, 99)
	if userToken != "" {
		ucs, err := connect(userToken)
		if err != nil {
			return nil, err
		}
		ul := pings(ucs)
		_ = ucs.Close()
		res.MCPCallUserJWTP50Us, res.MCPCallUserJWTP99Us = pct(ul, 50), pct(ul, 99)
	}
	lat = lat[:0]
	for range min(n, 500) {
		t0 := time.Now()
		if _, err := cs.ListTools(ctx, nil); err != nil {
			errs.add(err)
			continue
		}
		lat = append(lat, time.Since(t0))
	}
	res.MCPListP50Us = pct(lat, 50)

	if runs > 0 {
		py := map[string]any{"language": "python", "code": "print(1)"}
		if _, err := call("run_code", py); err != nil {
			return nil, fmt.Errorf("run_code: %w", err)
		}
		var rc, ex []time.Duration
		for range runs {
			time.Sleep(50 * time.Millisecond) // let the warm pool refill, as between real calls
			t0 := time.Now()
			r, err := call("run_code", py)
			if err == nil && !strings.Contains(mustTextOf(r), "1\n") {
				err = fmt.Errorf("run_code printed %q", mustTextOf(r))
			}
			if err != nil {
				errs.add(err)
				continue
			}
			rc = append(rc, time.Since(t0))
		}
		for range runs {
			time.Sleep(50 * time.Millisecond)
			t0 := time.Now()
			sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: api.SandboxTierProcess})
			if err != nil {
				errs.add(err)
				continue
			}
			var out bytes.Buffer
			code, err := c.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "python3", Args: []string{"-c", "print(1)"}}, &out, &out)
			if err == nil && code != 0 {
				err = fmt.Errorf("python3 exited %d", code)
			}
			if err != nil {
				errs.add(err)
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
	}
	res.Errors, res.FirstError = errs.n.Load(), errs.first
	return res, nil
}

func mustTextOf(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}
