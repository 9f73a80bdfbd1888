package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/spf13/cobra"
)

// maxMCPLine bounds one JSON-RPC message read from stdin.
const maxMCPLine = 16 << 20

func newMCPCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "mcp", Short: "Model Context Protocol access to the toolbox"}
	cmd.AddCommand(&cobra.Command{
		Use:   "stdio",
		Short: "Serve MCP on stdin/stdout for a desktop client, forwarding every message to the daemon's /mcp",
		Long: `Serve the Model Context Protocol over stdio (newline-delimited JSON-RPC) for
desktop MCP clients, using this CLI's credentials (--server, --token, or the
local daemon's data dir). Each message is sent to the daemon's /mcp endpoint
and the answer written back: the client and the daemon negotiate the protocol
directly. Logs go to stderr.

Client configuration, e.g.:
  {"command": "agentcloud", "args": ["--server", "https://agents.example.com", "mcp", "stdio"],
   "env": {"AGENTCLOUD_TOKEN": "..."}}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cr := g.credentials()
			server, token := cr.server, cr.token
			if server == "" {
				return fmt.Errorf("no daemon to talk to: pass --server URL (or run one locally with agentcloud serve)")
			}
			if !strings.Contains(server, "://") {
				server = "http://" + server
			}
			hc, err := g.httpClient(server)
			if err != nil {
				return err
			}
			if hc == nil {
				hc = &http.Client{}
			}
			b := &stdioBridge{endpoint: strings.TrimSuffix(server, "/") + "/mcp", token: token,
				hc: hc, out: g.stdout, log: g.stderr}
			return b.run(cmd.Context(), cmd.InOrStdin())
		},
	})
	return cmd
}

// stdioBridge forwards newline-delimited JSON-RPC from stdin to a
// Streamable HTTP MCP endpoint, one POST per message, and writes each
// answer (JSON or the events of an SSE stream) as one line to stdout.
// Requests run concurrently, so a long tool call does not hold up a ping.
type stdioBridge struct {
	endpoint, token string
	hc              *http.Client
	log             io.Writer

	mu      sync.Mutex // protects out and version
	out     io.Writer
	version string // negotiated protocol version, sent as MCP-Protocol-Version
	wg      sync.WaitGroup
}

func (b *stdioBridge) run(ctx context.Context, in io.Reader) error {
	r := bufio.NewReaderSize(in, 64<<10)
	for {
		line, err := readLine(r)
		if len(bytes.TrimSpace(line)) > 0 {
			msg := append([]byte(nil), bytes.TrimSpace(line)...)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				b.forward(ctx, msg)
			}()
			if isInitialize(msg) {
				b.wg.Wait() // learn the protocol version before anything else goes out
			}
		}
		if err != nil {
			b.wg.Wait()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// readLine reads one line of at most maxMCPLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxMCPLine {
			// Drop the rest of the line; the message is refused below.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			return []byte(`{"jsonrpc":"2.0","id":null,"method":"-too-large-"}`), err
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
	}
}

type rpcHead struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result struct {
		ProtocolVersion string `json:"protocolVersion"`
	} `json:"result"`
}

func isInitialize(msg []byte) bool {
	var h rpcHead
	return json.Unmarshal(msg, &h) == nil && h.Method == "initialize"
}

func (b *stdioBridge) emit(line []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, _ = b.out.Write(append(bytes.TrimSpace(line), '\n'))
}

// fail answers a request (not a notification) with a JSON-RPC error.
func (b *stdioBridge) fail(id json.RawMessage, code int, msg string) {
	if len(id) == 0 || string(id) == "null" {
		fmt.Fprintf(b.log, "agentcloud mcp stdio: %s\n", msg)
		return
	}
	out, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
	b.emit(out)
}

func (b *stdioBridge) forward(ctx context.Context, msg []byte) {
	var h rpcHead
	if err := json.Unmarshal(msg, &h); err != nil {
		b.emit([]byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: not JSON"}}`))
		return
	}
	if h.Method == "-too-large-" {
		b.emit([]byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"message longer than %d bytes"}}`, maxMCPLine)))
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint, bytes.NewReader(msg))
	if err != nil {
		b.fail(h.ID, -32603, "build request: "+err.Error())
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	b.mu.Lock()
	if b.version != "" {
		req.Header.Set("MCP-Protocol-Version", b.version)
	}
	b.mu.Unlock()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.fail(h.ID, -32603, "cannot reach the agentcloud daemon at "+b.endpoint+": "+err.Error())
		return
	}
	defer resp.Body.Close()
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == http.StatusAccepted:
		return // a notification or response was accepted
	case resp.StatusCode == http.StatusOK && ct == "text/event-stream":
		b.relaySSE(resp.Body)
	case ct == "application/json":
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxMCPLine))
		if h.Method == "initialize" {
			var rh rpcHead
			if json.Unmarshal(body, &rh) == nil && rh.Result.ProtocolVersion != "" {
				b.mu.Lock()
				b.version = rh.Result.ProtocolVersion
				b.mu.Unlock()
			}
		}
		b.emit(body)
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		detail := strings.TrimSpace(string(body))
		var p struct{ Detail string }
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			detail = p.Detail
		}
		msg := fmt.Sprintf("daemon answered %s: %s", resp.Status, detail)
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (pass --token or set AGENTCLOUD_TOKEN)"
		}
		b.fail(h.ID, -32603, msg)
	}
}

// relaySSE writes the data of each event of an SSE stream as one line.
func (b *stdioBridge) relaySSE(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxMCPLine)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				b.emit(data)
				data = nil
			}
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if len(data) > 0 {
		b.emit(data)
	}
}
