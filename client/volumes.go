package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/agentcloud/agentcloud/api"
)

// CreateVolume creates a named persistent volume owned by the caller;
// sizeMB 0 means the server's maximum.
func (c *Client) CreateVolume(ctx context.Context, name string, sizeMB int64) (*api.Volume, error) {
	var v api.Volume
	if err := c.Do(ctx, http.MethodPost, "/v1/volumes", api.CreateVolumeRequest{Name: name, SizeMB: sizeMB}, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Volumes lists the caller's volumes.
func (c *Client) Volumes(ctx context.Context) ([]api.Volume, error) {
	var out api.VolumeList
	if err := c.Do(ctx, http.MethodGet, "/v1/volumes", nil, &out); err != nil {
		return nil, err
	}
	return out.Volumes, nil
}

// Volume shows one of the caller's volumes.
func (c *Client) Volume(ctx context.Context, name string) (*api.Volume, error) {
	var v api.Volume
	if err := c.Do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DeleteVolume deletes a volume and its files (refused while mounted).
func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(name), nil, nil)
}
