// Package toolboxhttp serves the toolbox over HTTP: the /mcp endpoint
// (Model Context Protocol, through mcpserver) with its RFC 9728
// protected-resource metadata, and the REST routes GET /v1/tools and
// POST /v1/tools/{tool}/call. It maps tool refusals to problem+json kinds
// and a tool's own failure to a result with isError.
//
// It owns no tools and decides nothing: the toolbox authorizes, limits,
// validates and audits every call; the caller's identity comes from
// Config (the router has authenticated REST requests; /mcp authenticates
// itself through Config.Authenticate).
package toolboxhttp

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/mcpserver"
)

// Config configures a Handler.
type Config struct {
	// Toolbox serves the calls (required).
	Toolbox *toolbox.Toolbox
	// MCP is the /mcp handler over Toolbox (required).
	MCP *mcpserver.Handler
	// Authenticate authenticates an /mcp request as a tool caller.
	Authenticate func(r *http.Request) (toolbox.Caller, error)
	// Caller turns the router's authenticated principal into a tool caller.
	Caller func(ctx context.Context, p httpapi.Principal) (toolbox.Caller, error)
}

// Handler serves the toolbox's routes.
type Handler struct{ cfg Config }

// New returns the toolbox's HTTP surface over cfg.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// Routes registers /mcp, the protected-resource metadata and /v1/tools.
func (h *Handler) Routes(r *httpapi.Router) {
	serveMCP := func(w http.ResponseWriter, r *http.Request) error {
		c, err := h.cfg.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", mcpserver.Challenge(mcpserver.BaseURL(r)))
			return err
		}
		h.cfg.MCP.ServeHTTP(w, r, c)
		return nil
	}
	for _, m := range []string{"POST", "GET", "DELETE"} {
		r.Handle(httpapi.Route{Method: m, Path: "/mcp", Tag: "tools", Public: true, RawContentType: "application/json",
			Summary: "Model Context Protocol endpoint (Streamable HTTP, stateless): tools/list and tools/call over the toolbox. " +
				"Authenticate with a bearer token or a client certificate; GET and DELETE answer 405 (no sessions).",
			Handler: serveMCP})
	}
	meta := func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		httpapi.WriteJSON(w, http.StatusOK, mcpserver.Metadata(mcpserver.BaseURL(r)))
		return nil
	}
	for _, p := range []string{mcpserver.MetadataPath, mcpserver.MetadataPath + "/mcp"} {
		r.Handle(httpapi.Route{Method: "GET", Path: p, Tag: "tools", Public: true, Response: map[string]any{},
			Summary: "OAuth 2.0 protected-resource metadata (RFC 9728) of the /mcp endpoint.", Handler: meta})
	}
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/tools", Tag: "tools", Action: security.ActionToolList, Response: api.ToolList{},
		Summary: "List the toolbox's tools sorted by name, or with ?q=words the best matches first (?limit=N).",
		Query: []httpapi.QueryParam{
			{Name: "q", Description: "words to search for in tool names and descriptions; best matches first"},
			{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many tools, 1 to 1000"},
		},
		Handler: h.handleListTools})
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/tools/{tool}/call", Tag: "tools", Action: security.ActionToolInvoke,
		Request: map[string]any{}, Response: api.ToolResult{},
		Summary: "Call a tool with a JSON object of arguments; refusals are problems, a tool's own failure is a result with isError.",
		Handler: h.handleCallTool})
}

func (h *Handler) handleListTools(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 0
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return api.FieldErrorf(api.KindValidation, "limit", "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	var (
		ts  []toolbox.Tool
		err error
	)
	if q.Has("q") {
		ts, err = h.cfg.Toolbox.Search(r.Context(), q.Get("q"), limit)
	} else {
		ts, err = h.cfg.Toolbox.List(r.Context())
		if limit > 0 && len(ts) > limit {
			ts = ts[:limit]
		}
	}
	if err != nil {
		return err
	}
	out := api.ToolList{Tools: make([]api.Tool, 0, len(ts))}
	for _, t := range ts {
		out.Tools = append(out.Tools, t.API())
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) handleCallTool(w http.ResponseWriter, r *http.Request) error {
	p, _ := httpapi.PrincipalFrom(r.Context())
	c, err := h.cfg.Caller(r.Context(), p)
	if err != nil {
		return err
	}
	var args json.RawMessage
	if err := httpapi.DecodeJSON(r, &args); err != nil {
		return err
	}
	name := r.PathValue("tool")
	res, err := h.cfg.Toolbox.Call(r.Context(), c, name, args)
	if err != nil {
		e := toolbox.AsError(name, err)
		if toolbox.IsRefusal(e) || e.Code == toolbox.CodeUnavailable {
			if e.Code == toolbox.CodeRateLimited {
				w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfterS+0.999)))
			}
			return toolProblem(e)
		}
		if e.Code == toolbox.CodeInternal {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, api.ToolResult{IsError: true, Text: e.Message, Error: e.API()})
		return nil
	}
	httpapi.WriteJSON(w, http.StatusOK, res.API())
	return nil
}

// toolKinds maps refusals to problem kinds.
var toolKinds = map[toolbox.Code]api.Kind{
	toolbox.CodeUnknownTool: api.KindNotFound,
	toolbox.CodeQuarantined: api.KindConflict,
	toolbox.CodeInvalidArgs: api.KindValidation,
	toolbox.CodeTooLarge:    api.KindTooLarge,
	toolbox.CodeNotInList:   api.KindForbidden,
	toolbox.CodeForbidden:   api.KindForbidden,
	toolbox.CodeRateLimited: api.KindRateLimited,
	toolbox.CodeUnavailable: api.KindUnavailable,
}

func toolProblem(e *toolbox.Error) error {
	k, ok := toolKinds[e.Code]
	if !ok {
		k = api.KindBadRequest
	}
	p := api.Errorf(k, "%s", e.Message)
	for _, f := range e.Fields {
		p.Errors = append(p.Errors, api.FieldError{Field: f.Field, Detail: f.Detail})
	}
	return p
}
