// Package toolenv is env.tools for agent code: call, search and list over
// the toolbox with the calling session as the caller (its SPIFFE ID as
// principal, its manifest's tools list as Allowed). It owns the mapping of
// tool errors to JavaScript errors; the toolbox owns the tools, limits and
// authorization.
package toolenv

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Service is env.tools over a toolbox.
type Service struct {
	tb *toolbox.Toolbox
	td spiffeid.TrustDomain
}

var _ session.Service = Service{}

// New returns env.tools over tb; sessions are named in trust domain td.
func New(tb *toolbox.Toolbox, td spiffeid.TrustDomain) Service { return Service{tb: tb, td: td} }

// Invoke implements session.Service.
func (s Service) Invoke(ctx context.Context, sc session.Caller, method string, args []byte) ([]byte, error) {
	id, err := identity.NewID(s.td, identity.KindSession, sc.Agent+"/"+sc.Session)
	if err != nil {
		return nil, fmt.Errorf("session identity: %w", err)
	}
	c := toolbox.Caller{Principal: id.String(), Agent: sc.Agent, Session: sc.Session, Allowed: sc.Tools}
	if c.Allowed == nil {
		c.Allowed = []string{}
	}
	switch method {
	case "call":
		var a struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(args, &a); err != nil || a.Name == "" {
			return nil, isolate.HostErrorf("TypeError", "env.tools.call(name, args) needs a tool name and an arguments object")
		}
		res, err := s.tb.Call(ctx, c, a.Name, a.Arguments)
		if err != nil {
			e := toolbox.AsError(a.Name, err)
			return nil, &isolate.HostError{Name: jsErrorName(e.Code), Message: e.Message, Err: err}
		}
		return json.Marshal(res.API())
	case "search":
		var a struct {
			Query string `json:"query"`
			Limit int    `json:"limit"`
		}
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, isolate.HostErrorf("TypeError", "env.tools.search(words, {limit}) needs words as a string")
		}
		ts, err := s.tb.Search(ctx, a.Query, a.Limit)
		if err != nil {
			return nil, err
		}
		return toolListJSON(ts)
	case "list":
		ts, err := s.tb.List(ctx)
		if err != nil {
			return nil, err
		}
		return toolListJSON(ts)
	}
	return nil, isolate.HostErrorf("NotSupportedError", "env.tools.%s does not exist; use call, search or list", method)
}

func toolListJSON(ts []toolbox.Tool) ([]byte, error) {
	out := api.ToolList{Tools: make([]api.Tool, 0, len(ts))}
	for _, t := range ts {
		out.Tools = append(out.Tools, t.API())
	}
	return json.Marshal(out)
}

// jsErrorName is the JavaScript Error name of a tool error code:
// "rate_limited" → "RateLimitedError".
func jsErrorName(c toolbox.Code) string {
	var b strings.Builder
	for _, part := range strings.Split(string(c), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	b.WriteString("Error")
	return b.String()
}
