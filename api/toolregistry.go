package api

import (
	"encoding/json"
	"time"
)

// Tool upstream kinds and tool statuses, as in ToolRegistryEntry.
const (
	ToolUpstreamMCP     = "mcp"
	ToolUpstreamOpenAPI = "openapi"

	ToolStatusOK          = "ok"
	ToolStatusQuarantined = "quarantined"
)

// ToolCredential names the secret that authenticates calls to an upstream
// and how the platform puts it in each request: header Header with the
// secret in place of "{}" in Format, or query parameter Query. The value
// never reaches callers.
type ToolCredential struct {
	Secret string `json:"secret"`
	Header string `json:"header,omitempty"` // default "Authorization" (unless Query is set)
	Format string `json:"format,omitempty"` // default "Bearer {}" for a header, "{}" for a query parameter
	Query  string `json:"query,omitempty"`  // send the secret as this query parameter instead of a header
}

// ToolRegistryAddRequest is the body of POST /v1/tool-registry: a name
// and exactly one of MCPURL, OpenAPIURL and OpenAPIDocument.
type ToolRegistryAddRequest struct {
	Name            string `json:"name"`
	MCPURL          string `json:"mcp_url,omitempty"`          // an MCP server over Streamable HTTP
	OpenAPIURL      string `json:"openapi_url,omitempty"`      // an OpenAPI 3.0/3.1 document to fetch
	OpenAPIDocument string `json:"openapi_document,omitempty"` // an OpenAPI document (JSON or YAML)
	// BaseURL overrides the OpenAPI document's servers.
	BaseURL    string          `json:"base_url,omitempty"`
	Credential *ToolCredential `json:"credential,omitempty"`
	// RatePerMinute caps calls to the upstream per node (0: no cap).
	RatePerMinute int `json:"rate_per_minute,omitempty"`
	// AllowPrivate lets requests to this upstream reach a private or
	// loopback address (a tool server on this machine or the LAN); the
	// daemon's own API and NATS ports stay refused.
	AllowPrivate bool `json:"allow_private,omitempty"`
}

// RegistryTool is one tool of a registered upstream with its pin.
type RegistryTool struct {
	Name        string          `json:"name"` // in the toolbox: "<upstream>.<tool>"
	Tool        string          `json:"tool"` // as the upstream names it
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
	// Hash is the SHA-256 of the canonical JSON of the pinned name,
	// description and input schema ("" for a new tool not yet approved).
	Hash   string `json:"hash,omitempty"`
	Status string `json:"status"` // ok | quarantined
	Reason string `json:"reason,omitempty"`
	// PendingHash is the hash of what the upstream serves now, while it
	// differs from the pin; approving re-pins to it.
	PendingHash string `json:"pending_hash,omitempty"`
	// Endpoint is "METHOD URL-template" for OpenAPI tools.
	Endpoint string `json:"endpoint,omitempty"`
}

// ToolRegistryEntry is one registered upstream.
type ToolRegistryEntry struct {
	Name          string          `json:"name"`
	Kind          string          `json:"kind"` // mcp | openapi
	URL           string          `json:"url,omitempty"`
	BaseURL       string          `json:"base_url,omitempty"`
	Credential    *ToolCredential `json:"credential,omitempty"`
	RatePerMinute int             `json:"rate_per_minute,omitempty"`
	AllowPrivate  bool            `json:"allow_private,omitempty"`
	Tools         []RegistryTool  `json:"tools"`
	Notes         []string        `json:"notes,omitempty"`
	RefreshError  string          `json:"refresh_error,omitempty"`
	CreatedBy     string          `json:"created_by,omitempty"`
	Created       time.Time       `json:"created"`
	Approved      time.Time       `json:"approved"`
	Refreshed     time.Time       `json:"refreshed"`
}

// ToolRegistryList is the body of GET /v1/tool-registry.
type ToolRegistryList struct {
	Upstreams []ToolRegistryEntry `json:"upstreams"`
}

// ToolApproveRequest is the body of POST /v1/tool-registry/{name}/approve:
// the tools to re-pin (all quarantined tools when empty).
type ToolApproveRequest struct {
	Tools []string `json:"tools,omitempty"`
}

// ToolApproveResult answers an approval. With the deploy pipeline the
// approval is a run (target tool-pins): Run and RunState name it, and
// Approved lists the tools it pins (in force once the run passed).
type ToolApproveResult struct {
	Approved []string          `json:"approved"`
	Upstream ToolRegistryEntry `json:"upstream"`
	Run      string            `json:"run,omitempty"`
	RunState string            `json:"run_state,omitempty"`
}

// ToolPin is one pinned tool definition as a tool-pins run reviews and
// applies it: the definition's pinned fields, their hash, and the
// endpoint of an OpenAPI tool.
type ToolPin struct {
	Name        string          `json:"name"`
	Hash        string          `json:"hash"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"inputSchema"`
	Endpoint    string          `json:"endpoint,omitempty"`
}

// ToolPins is the value of a tool-pins run: every tool of an upstream
// pinned and callable, sorted by name.
type ToolPins struct {
	Tools []ToolPin `json:"tools"`
}
