// Package mcpserver serves the toolbox over the Model Context Protocol:
// Streamable HTTP in stateless mode (any node can answer any request) on
// github.com/modelcontextprotocol/go-sdk. It owns the MCP mapping of tools,
// results and errors, the check of incoming JSON-RPC, and the RFC 9728
// protected-resource metadata. Authentication is the daemon's: the caller
// is handed in per request through an Authenticate function.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/strictjson"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// MetadataPath is where the protected-resource metadata is served.
const MetadataPath = "/.well-known/oauth-protected-resource"

// maxOverhead is what a JSON-RPC envelope may add to a call's arguments
// before the body is refused outright (the arguments cap itself is the
// toolbox's and answers a structured tool error).
const maxOverhead = 64 << 10

// Config configures a Handler.
type Config struct {
	Toolbox *toolbox.Toolbox
	// Authenticate establishes the caller of a request or returns an error
	// (answered 401 with a WWW-Authenticate challenge by the Handler's
	// caller, see Challenge).
	Authenticate func(r *http.Request) (toolbox.Caller, error)
	Version      string
	Logger       *slog.Logger
}

// Handler is the /mcp endpoint.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	stream *mcp.StreamableHTTPHandler
	max    int64
}

type callerKey struct{}

// New returns the /mcp handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, max: int64(cfg.Toolbox.MaxArgBytes()) + maxOverhead}
	srv := mcp.NewServer(&mcp.Implementation{Name: "agentcloud", Title: "agentcloud toolbox", Version: cfg.Version},
		&mcp.ServerOptions{
			Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
			Instructions: "agentcloud's toolbox: built-in tools (run_code, state, http_fetch, agents) and registered upstream tools. Use search_tools to find tools by words.",
			Logger:       cfg.Logger,
		})
	srv.AddReceivingMiddleware(h.middleware)
	h.stream = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: cfg.Logger,
			// Authentication (bearer or mTLS) protects every request, so a
			// rebinding page cannot borrow a local user's session.
			DisableLocalhostProtection: true})
	return h
}

// ServeHTTP serves one MCP request for an authenticated caller: the body is
// checked to be JSON-RPC (a malformed one gets a JSON-RPC error, the
// server stays up), then handed to the SDK's stateless transport.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, c toolbox.Caller) {
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, h.max+1))
		if err != nil {
			writeRPCError(w, http.StatusBadRequest, jsonrpc.CodeParseError, "read request body: "+err.Error())
			return
		}
		if int64(len(body)) > h.max {
			writeRPCError(w, http.StatusRequestEntityTooLarge, jsonrpc.CodeInvalidRequest,
				fmt.Sprintf("request body is larger than %d bytes: tool arguments are limited to %d bytes", h.max, h.cfg.Toolbox.MaxArgBytes()))
			return
		}
		if code, msg := checkJSONRPC(body); code != 0 {
			writeRPCError(w, http.StatusBadRequest, code, msg)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
	h.stream.ServeHTTP(w, r)
}

// checkJSONRPC returns a JSON-RPC error code and message when body is not
// one JSON-RPC 2.0 message or a batch of them. It is a cheap shape check
// (the SDK decodes for real); its point is a JSON-RPC answer where the SDK
// would answer plain text.
func checkJSONRPC(body []byte) (int64, string) {
	trimmed := bytes.TrimSpace(body)
	if err := strictjson.Check(trimmed); err != nil {
		return jsonrpc.CodeParseError, "parse error: " + api.AsProblem(err).Detail
	}
	msgs := []json.RawMessage{trimmed}
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var batch []json.RawMessage // fresh: unmarshalling into msgs would overwrite body
		err := json.Unmarshal(trimmed, &batch)
		if msgs = batch; err != nil || len(msgs) == 0 {
			return jsonrpc.CodeInvalidRequest, "invalid request: a batch must be a non-empty array of JSON-RPC messages"
		}
	}
	for _, m := range msgs {
		var h struct {
			JSONRPC string          `json:"jsonrpc"`
			Method  *string         `json:"method"`
			Result  json.RawMessage `json:"result"`
			Error   json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(m, &h); err != nil || h.JSONRPC != "2.0" || (h.Method == nil && h.Result == nil && h.Error == nil) {
			return jsonrpc.CodeInvalidRequest, `invalid request: not a JSON-RPC 2.0 message; send e.g. {"jsonrpc":"2.0","id":1,"method":"tools/list"}`
		}
	}
	return 0, ""
}

func writeRPCError(w http.ResponseWriter, status int, code int64, msg string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nil, "error": map[string]any{"code": code, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// middleware answers tools/list and tools/call from the toolbox; every
// other method (initialize, ping, ...) goes to the SDK.
func (h *Handler) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		switch method {
		case "tools/list":
			return h.list(ctx)
		case "tools/call":
			r, ok := req.(*mcp.CallToolRequest)
			if !ok || r.Params == nil {
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "tools/call needs params {name, arguments}"}
			}
			return h.call(ctx, r.Params)
		}
		return next(ctx, method, req)
	}
}

func (h *Handler) list(ctx context.Context) (*mcp.ListToolsResult, error) {
	ts, err := h.cfg.Toolbox.List(ctx)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
	}
	out := &mcp.ListToolsResult{Tools: make([]*mcp.Tool, 0, len(ts))}
	for _, t := range ts {
		out.Tools = append(out.Tools, ToMCPTool(t))
	}
	return out, nil
}

// ToMCPTool is the MCP form of a tool; agentcloud's extra facts (source,
// untrusted, quarantine, hash) go in _meta under "agentcloud/".
func ToMCPTool(t toolbox.Tool) *mcp.Tool {
	mt := &mcp.Tool{Name: t.Name, Title: t.Title, Description: t.Description, InputSchema: t.InputSchema,
		Meta: mcp.Meta{"agentcloud/source": t.Source}}
	if len(t.OutputSchema) > 0 {
		mt.OutputSchema = t.OutputSchema
	}
	if t.Untrusted {
		mt.Meta["agentcloud/untrusted"] = true
		mt.Annotations = &mcp.ToolAnnotations{OpenWorldHint: ptr(true)}
	}
	if t.Quarantined {
		mt.Meta["agentcloud/quarantined"] = true
		mt.Meta["agentcloud/quarantineReason"] = t.QuarantineReason
		mt.Description = "[quarantined: not callable until approved] " + t.Description
	}
	if t.Hash != "" {
		mt.Meta["agentcloud/hash"] = t.Hash
	}
	return mt
}

func ptr[T any](v T) *T { return &v }

func (h *Handler) call(ctx context.Context, p *mcp.CallToolParamsRaw) (*mcp.CallToolResult, error) {
	c, ok := ctx.Value(callerKey{}).(toolbox.Caller)
	if !ok {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "no authenticated caller"}
	}
	res, err := h.cfg.Toolbox.Call(ctx, c, p.Name, p.Arguments)
	if errors.Is(err, toolbox.ErrUnknownTool) {
		// The MCP specification makes an unknown tool a protocol error.
		data, _ := json.Marshal(map[string]any{"code": toolbox.CodeUnknownTool, "tool": p.Name})
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error(), Data: data}
	}
	if err != nil {
		return ErrorResult(toolbox.AsError(p.Name, err)), nil
	}
	return ToMCPResult(res), nil
}

// ToMCPResult is the MCP form of a result.
func ToMCPResult(res toolbox.Result) *mcp.CallToolResult {
	out := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: res.Text}}, IsError: res.IsError}
	if res.Structured != nil {
		out.StructuredContent = res.Structured
	}
	if res.Untrusted {
		out.Meta = mcp.Meta{"agentcloud/untrusted": true}
	}
	return out
}

// ErrorResult is a refused or failed call as an MCP tool result: isError,
// the message as text and {"error": {code, message, fields...}} as
// structured content.
func ErrorResult(e *toolbox.Error) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true,
		Content:           []mcp.Content{&mcp.TextContent{Text: string(e.Code) + ": " + e.Error()}},
		StructuredContent: map[string]any{"error": e}}
}

// Metadata is the RFC 9728 protected-resource metadata of the /mcp
// endpoint at base (scheme://host).
func Metadata(base string) *oauthex.ProtectedResourceMetadata {
	base = strings.TrimSuffix(base, "/")
	return &oauthex.ProtectedResourceMetadata{
		Resource:               base + "/mcp",
		BearerMethodsSupported: []string{"header"},
		ScopesSupported:        []string{"tools"},
		ResourceName:           "agentcloud toolbox (MCP)",
		ResourceDocumentation:  base + "/openapi.json",
	}
}

// Challenge is the WWW-Authenticate value of a 401 from /mcp.
func Challenge(base string) string {
	return fmt.Sprintf("Bearer realm=\"agentcloud\", resource_metadata=%q", strings.TrimSuffix(base, "/")+MetadataPath)
}

// BaseURL is the scheme and host a request was sent to.
func BaseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
