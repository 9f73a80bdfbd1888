// Package toolbox is agentcloud's one set of tools: the built-in tools and
// the tools of registered upstreams (MCP servers, OpenAPI operations), behind
// one Call path that authorizes, rate-limits and audits every call. MCP
// clients, agent code (env.tools) and sandboxes all reach tools through it.
package toolbox

import (
	"context"
	"encoding/json"
)

// Tool is one callable tool as clients see it.
type Tool struct {
	// Name is unique across the toolbox: built-ins are plain ("run_code"),
	// upstream tools are "<registry name>.<tool name>".
	Name        string          `json:"name"`
	Title       string          `json:"title,omitempty"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	// OutputSchema, if set, describes Result.Structured.
	OutputSchema json.RawMessage `json:"outputSchema,omitempty"`
	// Source is "builtin" or the registry name of the upstream.
	Source string `json:"source"`
	// Untrusted marks tools whose output comes from outside the platform;
	// a session that reads it has its integrity lowered.
	Untrusted bool `json:"untrusted,omitempty"`
	// Quarantined tools are listed but not callable (their definition
	// changed upstream since it was pinned, until approved again).
	Quarantined      bool   `json:"quarantined,omitempty"`
	QuarantineReason string `json:"quarantineReason,omitempty"`
	// Hash pins the definition (name, description, input schema).
	Hash string `json:"hash,omitempty"`
}

// Caller is who calls a tool.
type Caller struct {
	// Principal is the caller's SPIFFE ID (user, agent, session, sandbox).
	Principal string
	// Agent and Session are set when agent code calls (env.tools or a
	// sandbox the session started); empty for a user's MCP client.
	Agent   string
	Session string
	// Sandbox is set when a sandbox calls through the egress proxy.
	Sandbox string
	// Allowed, when not nil, is the agent manifest's tool list: a tool not
	// in it is refused before policy is asked.
	Allowed []string
}

// Result is what a tool call returns.
type Result struct {
	// Text is the human-readable result (MCP text content).
	Text string `json:"text,omitempty"`
	// Structured is the machine-readable result (MCP structuredContent).
	Structured any `json:"structured,omitempty"`
	// IsError reports a tool-level failure the caller should see (bad
	// arguments, the tool's own error), as opposed to a protocol error.
	IsError bool `json:"isError,omitempty"`
	// Untrusted is set when the output came from outside the platform.
	Untrusted bool `json:"untrusted,omitempty"`
}

// Provider supplies tools: the built-ins, or one registered upstream.
type Provider interface {
	// Tools lists the provider's tools in a deterministic order. The
	// toolbox calls it on every List, Search and Call, so it must answer
	// from memory (a registry refreshes its upstreams in the background).
	Tools(ctx context.Context) ([]Tool, error)
	// Call runs one of the provider's tools; name is the full toolbox name.
	// Args have already been validated against the tool's InputSchema.
	Call(ctx context.Context, c Caller, name string, args json.RawMessage) (Result, error)
}
