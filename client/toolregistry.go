package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/agentcloud/agentcloud/api"
)

// AddToolUpstream registers an upstream MCP server or OpenAPI document.
func (c *Client) AddToolUpstream(ctx context.Context, req api.ToolRegistryAddRequest) (*api.ToolRegistryEntry, error) {
	var e api.ToolRegistryEntry
	if err := c.Do(ctx, http.MethodPost, "/v1/tool-registry", req, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ToolUpstreams lists the registered upstreams.
func (c *Client) ToolUpstreams(ctx context.Context) (*api.ToolRegistryList, error) {
	var l api.ToolRegistryList
	if err := c.Do(ctx, http.MethodGet, "/v1/tool-registry", nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ToolUpstream returns one registered upstream.
func (c *Client) ToolUpstream(ctx context.Context, name string) (*api.ToolRegistryEntry, error) {
	var e api.ToolRegistryEntry
	if err := c.Do(ctx, http.MethodGet, "/v1/tool-registry/"+url.PathEscape(name), nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// RefreshToolUpstream fetches an upstream's definitions now.
func (c *Client) RefreshToolUpstream(ctx context.Context, name string) (*api.ToolRegistryEntry, error) {
	var e api.ToolRegistryEntry
	if err := c.Do(ctx, http.MethodPost, "/v1/tool-registry/"+url.PathEscape(name)+"/refresh", nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ApproveToolUpstream re-pins quarantined tools (all when tools is empty).
func (c *Client) ApproveToolUpstream(ctx context.Context, name string, tools []string) (*api.ToolApproveResult, error) {
	var res api.ToolApproveResult
	if err := c.Do(ctx, http.MethodPost, "/v1/tool-registry/"+url.PathEscape(name)+"/approve", api.ToolApproveRequest{Tools: tools}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// RemoveToolUpstream unregisters an upstream.
func (c *Client) RemoveToolUpstream(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/tool-registry/"+url.PathEscape(name), nil, nil)
}
