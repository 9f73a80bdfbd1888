package api

import "encoding/json"

// Tool is one toolbox tool as GET /v1/tools lists it.
type Tool struct {
	Name             string          `json:"name"`
	Title            string          `json:"title,omitempty"`
	Description      string          `json:"description"`
	InputSchema      json.RawMessage `json:"inputSchema"`
	OutputSchema     json.RawMessage `json:"outputSchema,omitempty"`
	Source           string          `json:"source"` // "builtin" or the registry name
	Untrusted        bool            `json:"untrusted,omitempty"`
	Quarantined      bool            `json:"quarantined,omitempty"`
	QuarantineReason string          `json:"quarantineReason,omitempty"`
	Hash             string          `json:"hash,omitempty"`
}

// ToolList is the body of GET /v1/tools.
type ToolList struct {
	Tools []Tool `json:"tools"`
}

// ToolError is why a tool call failed once the tool ran (a refusal before
// it runs is a problem+json answer instead).
type ToolError struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Fields  []FieldError `json:"fields,omitempty"`
}

// ToolResult is the body of POST /v1/tools/{name}/call.
type ToolResult struct {
	Text       string          `json:"text,omitempty"`
	Structured json.RawMessage `json:"structured,omitempty"`
	IsError    bool            `json:"isError,omitempty"`
	Untrusted  bool            `json:"untrusted,omitempty"`
	Error      *ToolError      `json:"error,omitempty"`
}
