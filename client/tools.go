package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
)

// Tools lists the toolbox's tools sorted by name (limit <= 0: all).
func (c *Client) Tools(ctx context.Context, limit int) ([]api.Tool, error) {
	p := "/v1/tools"
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out api.ToolList
	if err := c.Do(ctx, "GET", p, nil, &out); err != nil {
		return nil, err
	}
	return out.Tools, nil
}

// SearchTools finds tools by words, best match first (limit <= 0: 20).
func (c *Client) SearchTools(ctx context.Context, words string, limit int) ([]api.Tool, error) {
	q := url.Values{"q": {words}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out api.ToolList
	if err := c.Do(ctx, "GET", "/v1/tools?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return out.Tools, nil
}

// CallTool calls a tool with args (a JSON object; nil means {}). A refusal
// (unknown tool, bad arguments, policy, rate limit) is a *api.Problem; a
// tool's own failure is a result with IsError and Error set.
func (c *Client) CallTool(ctx context.Context, name string, args json.RawMessage) (*api.ToolResult, error) {
	if args == nil {
		args = json.RawMessage("{}")
	}
	var out api.ToolResult
	if err := c.Do(ctx, "POST", "/v1/tools/"+url.PathEscape(name)+"/call", args, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
