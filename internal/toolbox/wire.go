package toolbox

import (
	"encoding/json"

	"github.com/agentcloud/agentcloud/api"
)

// API is t as the wire type of the API, env.tools and the CLI.
func (t Tool) API() api.Tool {
	return api.Tool{Name: t.Name, Title: t.Title, Description: t.Description, InputSchema: t.InputSchema,
		OutputSchema: t.OutputSchema, Source: t.Source, Untrusted: t.Untrusted, Quarantined: t.Quarantined,
		QuarantineReason: t.QuarantineReason, Hash: t.Hash}
}

// API is res as the wire type of the API and env.tools.
func (res Result) API() api.ToolResult {
	out := api.ToolResult{Text: res.Text, IsError: res.IsError, Untrusted: res.Untrusted}
	if res.Structured != nil {
		if raw, ok := res.Structured.(json.RawMessage); ok {
			out.Structured = raw
		} else if b, err := json.Marshal(res.Structured); err == nil {
			out.Structured = b
		}
	}
	return out
}

// API is e as the wire type of a tool's own failure.
func (e *Error) API() *api.ToolError {
	out := &api.ToolError{Code: string(e.Code), Message: e.Message}
	for _, f := range e.Fields {
		out.Fields = append(out.Fields, api.FieldError{Field: f.Field, Detail: f.Detail})
	}
	return out
}
