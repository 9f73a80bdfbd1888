package security

// Tool callers (toolcallers.go): who calls a tool, as the toolbox sees it
// (toolbox.Caller: a session's manifest tools list becomes Allowed), the
// principal back from a caller, and http_fetch through the egress proxy
// under the caller's own identity.

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// toolFetchTimeout bounds one http_fetch of a caller that is not a session
// (a session's fetches are bounded by the session's own limits).
const toolFetchTimeout = 60 * time.Second

// ToolCaller turns an authenticated principal into a tool caller; a
// session's manifest tools list becomes Allowed.
func (s *Security) ToolCaller(ctx context.Context, p Principal) (toolbox.Caller, error) {
	c := toolbox.Caller{Principal: p.ID}
	ip, err := identity.ParsePrincipal(s.td, p.ID)
	if err != nil {
		return c, nil // the bootstrap admin and other non-SPIFFE principals
	}
	switch ip.Kind {
	case identity.KindSession:
		c.Agent, c.Session = ip.Agent, ip.Name
		c.Allowed = []string{}
		if info, ok, err := s.agents.AgentInfo(ctx, ip.Agent); err != nil {
			return c, err
		} else if ok && info.Manifest.Tools != nil {
			c.Allowed = info.Manifest.Tools
		}
	case identity.KindSandbox:
		c.Sandbox = ip.Name
	case identity.KindAgent:
		c.Agent = ip.Name
	}
	return c, nil
}

// ToolCallerOf authenticates an /mcp request.
func (s *Security) ToolCallerOf(r *http.Request) (toolbox.Caller, error) {
	p, err := s.Authenticate(r)
	if err != nil {
		return toolbox.Caller{}, err
	}
	return s.ToolCaller(r.Context(), p)
}

// ToolPrincipal is the principal of a tool caller.
func (s *Security) ToolPrincipal(c toolbox.Caller) Principal {
	p := Principal{ID: c.Principal}
	if ip, err := identity.ParsePrincipal(s.td, c.Principal); err == nil {
		p.Kind = string(ip.Kind)
	}
	return p
}

// ToolFetcher sends http_fetch through the egress proxy: a session's call
// as the session (manifest allowlist, policy, labels), anyone else's under
// their own identity and policy.
type ToolFetcher struct {
	Sec   *Security
	Proxy *egress.Proxy
}

// Fetch implements the built-in tools' fetcher.
func (f ToolFetcher) Fetch(ctx context.Context, c toolbox.Caller, req *http.Request) (*http.Response, error) {
	if c.Session != "" {
		sc := session.Caller{Agent: c.Agent, Session: c.Session}
		if info, ok, err := f.Sec.agents.AgentInfo(ctx, c.Agent); err == nil && ok {
			sc.Egress, sc.Tools = info.Manifest.Egress, info.Manifest.Tools
		}
		return f.Sec.SessionFetcher(f.Proxy).Fetch(ctx, sc, req)
	}
	id := c.Principal
	if !strings.HasPrefix(id, "spiffe://") {
		return nil, toolbox.Errorf(toolbox.CodeForbidden, "http_fetch", "caller %q has no platform identity to fetch with", id)
	}
	ctx, cancel := context.WithTimeout(ctx, toolFetchTimeout)
	resp, err := f.Proxy.Do(ctx, egress.Caller{ID: id, Purpose: egress.PurposeTool}, req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

// cancelBody cancels the fetch's context when its body is closed.
type cancelBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	cancel context.CancelFunc
}

func (b cancelBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b cancelBody) Close() error               { err := b.rc.Close(); b.cancel(); return err }
