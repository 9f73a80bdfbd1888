package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/agentcloud/agentcloud/api"
)

// CreateE2BKey issues an API key of the E2B-compatible API for the caller.
func (c *Client) CreateE2BKey(ctx context.Context, req api.E2BKeyRequest) (*api.E2BKey, error) {
	var k api.E2BKey
	if err := c.Do(ctx, http.MethodPost, "/v1/e2b/keys", req, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// E2BKeys lists the caller's E2B API keys (an administrator's: all).
func (c *Client) E2BKeys(ctx context.Context) ([]api.E2BKey, error) {
	var l api.E2BKeyList
	if err := c.Do(ctx, http.MethodGet, "/v1/e2b/keys", nil, &l); err != nil {
		return nil, err
	}
	return l.Keys, nil
}

// RevokeE2BKey revokes an E2B API key by id.
func (c *Client) RevokeE2BKey(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/e2b/keys/"+url.PathEscape(id), nil, nil)
}
