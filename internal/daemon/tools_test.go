package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bearerTransport adds a bearer token to every request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func adminToken(t *testing.T, data string) string {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}

func mcpConnect(t *testing.T, addr, token string) *mcp.ClientSession {
	t.Helper()
	cl := mcp.NewClient(&mcp.Implementation{Name: "agentcloud-test", Version: "1"}, nil)
	cs, err := cl.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: "http://" + addr + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{token}}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatalf("connect to /mcp: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// structuredOf decodes a result's structured content.
func structuredOf(t *testing.T, r *mcp.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(r.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
}

type toolErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Fields  []struct{ Field, Detail string }
	} `json:"error"`
}

func wantToolError(t *testing.T, what string, r *mcp.CallToolResult, err error, code string) toolErr {
	t.Helper()
	var te toolErr
	if err != nil {
		t.Fatalf("%s: protocol error %v, want a tool error result", what, err)
	}
	if !r.IsError {
		t.Fatalf("%s: isError false, want %s", what, code)
	}
	structuredOf(t, r, &te)
	if te.Error.Code != code || te.Error.Message == "" {
		t.Fatalf("%s: error %+v, want code %s", what, te.Error, code)
	}
	return te
}

// TestMCPWithGoSDK drives /mcp with the go-sdk client: list, run_code,
// state_put/state_get seen by the session itself, and every kind of bad call.
func TestMCPWithGoSDK(t *testing.T) {
	d, c := startDaemon(t)
	ctx := context.Background()
	deployCounter(t, c)
	cs := mcpConnect(t, d.Addr(), adminToken(t, d.DataDir()))

	lt, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range lt.Tools {
		names = append(names, tl.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("tools not sorted: %v", names)
	}
	for _, want := range []string{"call_agent", "deploy_agent", "http_fetch", "list_agents", "ping", "run_code", "search_tools", "state_get", "state_list", "state_put"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	lt2, _ := cs.ListTools(ctx, nil)
	if b1, b2 := mustJSON(t, lt.Tools), mustJSON(t, lt2.Tools); !bytes.Equal(b1, b2) {
		t.Error("two tools/list answers differ")
	}

	// state_put, then the session sees it, then state_get sees the session's write.
	r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "state_put", Arguments: map[string]any{"agent": "counter", "session": "s1", "key": "n", "value": 41}})
	if err != nil || r.IsError {
		t.Fatalf("state_put: %v %+v", err, r)
	}
	got, err := callCounter(c, "s1")
	if err != nil || got.Stored != 42 {
		t.Fatalf("session after state_put: %+v %v", got, err)
	}
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "state_get", Arguments: map[string]any{"agent": "counter", "session": "s1", "key": "n"}})
	if err != nil || r.IsError {
		t.Fatalf("state_get: %v %+v", err, r)
	}
	var sg struct {
		Found bool
		Value int
	}
	structuredOf(t, r, &sg)
	if !sg.Found || sg.Value != 42 {
		t.Fatalf("state_get: %+v", sg)
	}
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "state_list", Arguments: map[string]any{"agent": "counter", "session": "s1"}})
	if err != nil || r.IsError || !strings.Contains(mustText(r), `"key":"n"`) {
		t.Fatalf("state_list: %v %+v", err, r)
	}

	// deploy_agent, list_agents and call_agent: an agent deployed by a tool
	// answers another tool call.
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy_agent", Arguments: map[string]any{"files": map[string]string{
		"agent.json": `{"name":"hello","entry":"agent.js"}`,
		"agent.js":   `export default { async fetch(req) { return new Response("hi " + (await req.text()) + " " + new URL(req.url).pathname); } };`,
	}}})
	if err != nil || r.IsError {
		t.Fatalf("deploy_agent: %v %s", err, mustText(r))
	}
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_agents"})
	if err != nil || r.IsError || !strings.Contains(mustText(r), `"name":"hello"`) || !strings.Contains(mustText(r), `"name":"counter"`) {
		t.Fatalf("list_agents: %v %s", err, mustText(r))
	}
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "call_agent", Arguments: map[string]any{"agent": "hello", "session": "x", "method": "POST", "path": "/p", "body": "there"}})
	var ca struct {
		Status int
		Body   string
	}
	if err != nil || r.IsError {
		t.Fatalf("call_agent: %v %s", err, mustText(r))
	}
	if structuredOf(t, r, &ca); ca.Status != 200 || ca.Body != "hi there /p" {
		t.Fatalf("call_agent: %+v", ca)
	}
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "deploy_agent", Arguments: map[string]any{"files": map[string]string{
		"agent.json": `{"name":"bad name!","entry":"agent.js"}`, "agent.js": "export default {}"}}})
	if te := wantToolError(t, "deploy_agent with a bad manifest", r, err, "invalid_arguments"); len(te.Error.Fields) == 0 {
		t.Errorf("deploy_agent with a bad manifest: no fields in %+v", te)
	}

	// Bad calls: each a structured tool error; the server stays up.
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_code", Arguments: map[string]any{"language": "ruby", "code": "puts 1"}})
	te := wantToolError(t, "run_code ruby", r, err, "invalid_arguments")
	if len(te.Error.Fields) == 0 || te.Error.Fields[0].Field != "language" {
		t.Errorf("run_code ruby: fields %+v, want language", te.Error.Fields)
	}
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "state_get", Arguments: map[string]any{"agent": "counter", "session": "s1", "key": 5}})
	wantToolError(t, "state_get key:5", r, err, "invalid_arguments")
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "state_get", Arguments: map[string]any{"key": "n"}})
	wantToolError(t, "state_get without session", r, err, "invalid_arguments")
	r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping", Arguments: map[string]any{"pad": strings.Repeat("x", 300<<10)}})
	wantToolError(t, "oversized", r, err, "arguments_too_large")
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "no_such_tool", Arguments: map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Fatalf("unknown tool: %v", err)
	}

	if err := process.Available(); err != nil {
		t.Logf("run_code skipped: process sandbox tier unavailable: %v", err)
	} else {
		r, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_code", Arguments: map[string]any{
			"language": "python",
			"code":     "import sys\nprint(open('in.txt').read().upper())\nopen('out.txt','w').write('made')\nsys.exit(3)",
			"files":    map[string]string{"in.txt": "hello"},
		}})
		if err != nil || r.IsError {
			t.Fatalf("run_code: %v %+v", err, r)
		}
		var rc struct {
			ExitCode int `json:"exit_code"`
			Stdout   string
			Files    []struct{ Path, Content string }
		}
		structuredOf(t, r, &rc)
		if rc.ExitCode != 3 || rc.Stdout != "HELLO\n" || len(rc.Files) != 1 || rc.Files[0].Path != "/workspace/out.txt" || rc.Files[0].Content != "made" {
			t.Fatalf("run_code: %+v", rc)
		}
	}

	// Malformed JSON-RPC gets a JSON-RPC error, not a crash.
	base := "http://" + d.Addr()
	for _, body := range []string{`{not json`, `{"hello":1}`, `[]`} {
		code, resp := rawPost(t, base+"/mcp", adminToken(t, d.DataDir()), body)
		var rpc struct {
			Error struct{ Code int } `json:"error"`
		}
		if code != http.StatusBadRequest || json.Unmarshal([]byte(resp), &rpc) != nil || rpc.Error.Code == 0 {
			t.Errorf("malformed %q: %d %s", body, code, resp)
		}
	}
	if r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "ping"}); err != nil || r.IsError || mustText(r) != "pong" {
		t.Fatalf("ping after malformed requests: %v %+v", err, r)
	}

	// Without credentials: 401 with the resource metadata challenge.
	code, _ := rawPost(t, base+"/mcp", "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	resp, err := http.Get(base + "/.well-known/oauth-protected-resource")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Resource     string   `json:"resource"`
		BearerMethod []string `json:"bearer_methods_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if code != http.StatusUnauthorized || meta.Resource != base+"/mcp" || len(meta.BearerMethod) == 0 {
		t.Fatalf("unauthenticated: %d, metadata %+v", code, meta)
	}
	req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(`{}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `resource_metadata="`+base+`/.well-known/oauth-protected-resource"`) {
		t.Fatalf("WWW-Authenticate: %q", ch)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustText(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func rawPost(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// BenchmarkMCPPing is one tools/call of the no-op tool through /mcp over
// loopback (agentcloud bench tools reports its percentiles).
func BenchmarkMCPPing(b *testing.B) {
	cfg := config.Default()
	cfg.Data, cfg.Listen = b.TempDir(), "127.0.0.1:0"
	cfg.ToolCallsPerSecond, cfg.ToolCallBurst = 1e6, 1e6
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	cl := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	tok, err := os.ReadFile(filepath.Join(d.DataDir(), auth.TokenFile))
	if err != nil {
		b.Fatal(err)
	}
	cs, err := cl.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: "http://" + d.Addr() + "/mcp",
		HTTPClient: &http.Client{Transport: bearerTransport{strings.TrimSpace(string(tok))}}, DisableStandaloneSSE: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	for b.Loop() {
		if r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "ping"}); err != nil || r.IsError {
			b.Fatal(err, r)
		}
	}
}
