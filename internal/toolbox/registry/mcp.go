package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/version"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpConn is one client session with an upstream MCP server, reused across
// calls and re-established after a failure.
type mcpConn struct {
	mu      sync.Mutex
	session *mcp.ClientSession
}

func (c *mcpConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != nil {
		_ = c.session.Close()
		c.session = nil
	}
}

// upstreamTransport sends the go-sdk client's requests through the Doer,
// with the credential placeholder in its header.
type upstreamTransport struct {
	doer Doer
	up   Upstream
}

func (t upstreamTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	t.up.Credential.Apply(req)
	return t.doer(req.Context(), t.up, req)
}

// session returns the upstream's client session, connecting if needed.
func (r *Registry) session(ctx context.Context, u *upstream) (*mcp.ClientSession, error) {
	u.mu.Lock()
	if u.conn == nil {
		u.conn = &mcpConn{}
	}
	conn, e := u.conn, u.entry
	u.mu.Unlock()
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.session != nil {
		return conn.session, nil
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "agentcloud-tool-registry", Version: version.Version}, nil)
	tr := &mcp.StreamableClientTransport{
		Endpoint:             e.URL,
		HTTPClient:           &http.Client{Transport: upstreamTransport{doer: r.cfg.Doer, up: r.upstreamOf(&e)}},
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
	}
	s, err := client.Connect(ctx, tr, nil)
	if p, ok := forbidden(err); ok {
		return nil, api.Errorf(api.KindForbidden, "connecting to %s refused: %s", e.URL, p.Detail)
	}
	if err != nil {
		return nil, api.FieldErrorf(api.KindBadRequest, "mcp_url",
			"%s is not a reachable MCP server over Streamable HTTP (the initialize request failed): %v", e.URL, err)
	}
	conn.session = s
	return s, nil
}

// dropSession forgets a session that failed, so the next use reconnects.
func (u *upstream) dropSession(s *mcp.ClientSession) {
	u.mu.Lock()
	conn := u.conn
	u.mu.Unlock()
	if conn == nil {
		return
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.session == s {
		_ = s.Close()
		conn.session = nil
	}
}

// mcpList lists the upstream's tools as definitions.
func (r *Registry) mcpList(ctx context.Context, u *upstream) ([]Definition, error) {
	s, err := r.session(ctx, u)
	if err != nil {
		return nil, err
	}
	var out []Definition
	for t, err := range s.Tools(ctx, nil) {
		if err != nil {
			u.dropSession(s)
			return nil, api.FieldErrorf(api.KindBadRequest, "mcp_url", "listing the tools of %s failed: %v", u.url(), err)
		}
		schema, err := json.Marshal(t.InputSchema)
		if err != nil {
			return nil, api.FieldErrorf(api.KindBadRequest, "mcp_url", "tool %q of %s: input schema: %v", t.Name, u.url(), err)
		}
		if t.InputSchema == nil {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		out = append(out, Definition{Name: t.Name, Description: t.Description, InputSchema: schema})
	}
	return out, nil
}

func (u *upstream) url() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.entry.URL
}

// mcpCall forwards one call to the upstream.
func (r *Registry) mcpCall(ctx context.Context, u *upstream, tool string, args json.RawMessage) (toolbox.Result, error) {
	s, err := r.session(ctx, u)
	if err != nil {
		return toolbox.Result{}, err
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		if ctx.Err() == nil {
			u.dropSession(s)
		}
		return callFailure(u.url(), "calling "+tool, err)
	}
	var text []string
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			text = append(text, c.Text)
		case *mcp.ImageContent:
			text = append(text, fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *mcp.AudioContent:
			text = append(text, fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *mcp.ResourceLink:
			text = append(text, fmt.Sprintf("[resource %s]", c.URI))
		case *mcp.EmbeddedResource:
			if c.Resource != nil {
				text = append(text, c.Resource.Text)
			}
		}
	}
	return toolbox.Result{Text: strings.Join(text, "\n"), Structured: res.StructuredContent, IsError: res.IsError, Untrusted: true}, nil
}
