// Package builtin is the toolbox's built-in tools: run_code, state_get,
// state_put, state_list, http_fetch, deploy_agent, call_agent, list_agents,
// search_tools and ping. It is one toolbox.Provider. It owns the tools'
// schemas and argument handling; the platform parts they drive (sandbox
// manager, session state, agents, egress proxy, authorization) are handed
// in by the daemon as small interfaces. Authorization of the tool call
// itself happens in the toolbox; the authorization of what a tool then does
// on the caller's behalf (a session's state, an agent) happens here through
// Deps.Authorize, with the same actions the REST API uses.
package builtin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// State is session state as the state tools need it (session.Manager).
type State interface {
	StateGet(ctx context.Context, agent, id, key string) (json.RawMessage, bool, error)
	StatePut(ctx context.Context, agent, id, key string, value json.RawMessage) error
	StateList(ctx context.Context, agent, id, prefix string, limit int) ([]session.StateEntry, error)
}

// Agents is the agent platform as the agent tools need it
// (session.Manager).
type Agents interface {
	Agents(ctx context.Context) ([]api.Agent, error)
	Deploy(ctx context.Context, by session.Principal, b *bundle.Bundle) (api.AgentVersion, error)
	Call(ctx context.Context, agent, id string, req isolate.Request) (isolate.Response, error)
}

// Fetcher sends an outbound request through the egress proxy with the
// caller's identity and policy.
type Fetcher interface {
	Fetch(ctx context.Context, c toolbox.Caller, req *http.Request) (*http.Response, error)
}

// Searcher finds tools by words (the toolbox's Search).
type Searcher func(ctx context.Context, words string, limit int) ([]toolbox.Tool, error)

// Resource is what a tool acts on for its caller, as the REST API names
// it for authorization: Type "Agent" or "Session", its ID, and Parent
// scoping the ID (a session's agent).
type Resource struct {
	Type   string
	ID     string
	Parent string
}

// AuthorizeFunc asks policy whether c may perform action on res, as the
// REST API would for the same principal.
type AuthorizeFunc func(ctx context.Context, c toolbox.Caller, action string, res Resource) error

// Sandboxes makes and removes the sandboxes run_code runs code in. The
// daemon's implementation makes the caller their owner (a session's
// sandbox belongs to its agent's owner), so they count against the owner's
// caps and quota and show in the owner's GET /v1/sandboxes while they live;
// a refusal for those reasons is an *api.Problem (validation-failed or
// rate-limited).
type Sandboxes interface {
	Create(ctx context.Context, c toolbox.Caller, spec sandbox.Spec) (sandbox.Sandbox, error)
	Delete(ctx context.Context, id string) error
}

// Deps are the platform parts the built-in tools drive. A nil part makes
// its tools answer CodeUnavailable with the reason.
type Deps struct {
	Sandboxes Sandboxes
	// SandboxesOff says why Sandboxes is nil.
	SandboxesOff error
	State        State
	Agents       Agents
	Fetch        Fetcher
	Search       Searcher
	Authorize    AuthorizeFunc
	// Principal turns a caller into the principal a deploy records as the
	// agent's owner (nil: none).
	Principal func(c toolbox.Caller) session.Principal
	// ActAs returns ctx acting as c: carrying c as the authenticated
	// principal, as an API request from c would, since the label Flow reads
	// who calls from the context (call_agent and the state tools). Nil
	// leaves ctx as it is and moves no labels for the state tools.
	ActAs func(ctx context.Context, c toolbox.Caller) context.Context
	// Flow moves labels when a tool carries data between sessions: a
	// state_put into another session's state enters it, a state_get or
	// state_list of it leaves it (call_agent goes through Agents.Call,
	// which applies the session manager's Flow itself).
	Flow session.Flow
}

// Provider is the built-in tools.
type Provider struct {
	d     Deps
	tools []toolbox.Tool
	run   map[string]handler
}

type handler func(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error)

var _ toolbox.Provider = (*Provider)(nil)

// New returns the built-in tools over d.
func New(d Deps) *Provider {
	p := &Provider{d: d, run: map[string]handler{}}
	add := func(name, title, desc, schema string, untrusted bool, h handler) {
		p.tools = append(p.tools, toolbox.Tool{Name: name, Title: title, Description: desc,
			InputSchema: json.RawMessage(schema), Source: toolbox.BuiltinProvider, Untrusted: untrusted})
		p.run[name] = h
	}
	add("call_agent", "Call an agent", "Send an HTTP request (method, path, body) to a session of another agent and return its response: agent-to-agent calls, authorized as session.call.", callAgentSchema, false, p.callAgent)
	add("deploy_agent", "Deploy an agent", "Deploy an agent bundle given as files (path to text content, including agent.json) as a new version and make it current.", deployAgentSchema, false, p.deployAgent)
	add("http_fetch", "Fetch a URL", "Fetch an http(s) URL through the platform's egress proxy, under the caller's identity and egress policy. The output is untrusted input.", httpFetchSchema, true, p.httpFetch)
	add("list_agents", "List agents", "List the deployed agents the caller may read, with their current versions.", listAgentsSchema, false, p.listAgents)
	add("ping", "Ping", "Do nothing and answer pong: a cheap call to check the toolbox is reachable.", pingSchema, false, p.ping)
	add("run_code", "Run code", "Run Python, JavaScript (node) or bash code in a fresh sandbox with optional input files under /workspace; returns stdout, stderr, the exit code and the files the code wrote.", runCodeSchema, false, p.runCode)
	add("search_tools", "Search tools", "Find tools by words across the built-in tools and the registry of upstream tools, best match first, so an agent loads only the tools it needs.", searchToolsSchema, false, p.searchTools)
	add("state_get", "Get session state", "Read one key of a session's durable state (the calling session's own, or agent+session for other callers).", stateGetSchema, false, p.stateGet)
	add("state_list", "List session state", "List the keys (with values) of a session's durable state that start with a prefix.", stateListSchema, false, p.stateList)
	add("state_put", "Put session state", "Write one key of a session's durable state to a JSON value.", statePutSchema, false, p.statePut)
	return p
}

// Tools lists the built-in tools sorted by name.
func (p *Provider) Tools(context.Context) ([]toolbox.Tool, error) { return p.tools, nil }

// Call runs one built-in tool; args have been validated against its schema.
func (p *Provider) Call(ctx context.Context, c toolbox.Caller, name string, args json.RawMessage) (toolbox.Result, error) {
	h, ok := p.run[name]
	if !ok {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnknownTool, name, "unknown built-in tool %q", name)
	}
	return h(ctx, c, args)
}

// decode unmarshals validated args into v.
func decode(name string, args json.RawMessage, v any) error {
	if err := json.Unmarshal(args, v); err != nil {
		return toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "arguments of %s: %v", name, err)
	}
	return nil
}

// structured returns a result whose text is the JSON of v.
func structured(v any) (toolbox.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return toolbox.Result{}, fmt.Errorf("encode result: %w", err)
	}
	return toolbox.Result{Text: string(b), Structured: json.RawMessage(b)}, nil
}

// platformErr turns a platform error into a tool error: problems keep their
// kind (a 4xx is the caller's to fix), anything else is a tool failure.
func platformErr(tool string, err error) error {
	if p := api.AsProblem(err); p != nil {
		switch p.Kind() {
		case api.KindForbidden:
			return toolbox.Wrap(toolbox.CodeForbidden, tool, err, "%s", p.Detail)
		case api.KindValidation, api.KindBadRequest, api.KindInvalidJSON, api.KindTooLarge, api.KindNotFound:
			e := toolbox.Wrap(toolbox.CodeInvalidArgs, tool, err, "%s", p.Detail)
			for _, f := range p.Errors {
				e.Fields = append(e.Fields, toolbox.FieldError{Field: f.Field, Detail: f.Detail})
			}
			return e
		case api.KindUnavailable:
			return toolbox.Wrap(toolbox.CodeUnavailable, tool, err, "%s", p.Detail)
		case api.KindRateLimited:
			return toolbox.Wrap(toolbox.CodeRateLimited, tool, err, "%s", p.Detail)
		}
	}
	return toolbox.Wrap(toolbox.CodeToolFailed, tool, err, "%s: %v", tool, err)
}

func (p *Provider) ping(context.Context, toolbox.Caller, json.RawMessage) (toolbox.Result, error) {
	return toolbox.Result{Text: "pong", Structured: map[string]any{"pong": true}}, nil
}

func (p *Provider) searchTools(ctx context.Context, _ toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	var a struct {
		Query string `json:"query"`
		Limit int    `json:"limit"`
	}
	if err := decode("search_tools", args, &a); err != nil {
		return toolbox.Result{}, err
	}
	if p.d.Search == nil {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnavailable, "search_tools", "tool search is not wired on this node")
	}
	ts, err := p.d.Search(ctx, a.Query, a.Limit)
	if err != nil {
		return toolbox.Result{}, err
	}
	type hit struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Source      string `json:"source"`
		Quarantined bool   `json:"quarantined,omitempty"`
	}
	out := struct {
		Tools []hit `json:"tools"`
	}{Tools: []hit{}}
	for _, t := range ts {
		out.Tools = append(out.Tools, hit{t.Name, t.Description, t.Source, t.Quarantined})
	}
	return structured(out)
}
