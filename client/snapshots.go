package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/agentcloud/agentcloud/api"
)

// SnapshotSandbox saves a sandbox's files and, on the gVisor tier, its
// memory (api.Snapshot.Memory says which).
func (c *Client) SnapshotSandbox(ctx context.Context, id string) (*api.Snapshot, error) {
	var out api.Snapshot
	if err := c.Do(ctx, http.MethodPost, sandboxPath(id)+"/snapshots", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Snapshots lists the snapshots the caller may read.
func (c *Client) Snapshots(ctx context.Context) ([]api.Snapshot, error) {
	var out api.SnapshotList
	if err := c.Do(ctx, http.MethodGet, "/v1/snapshots", nil, &out); err != nil {
		return nil, err
	}
	return out.Snapshots, nil
}

// Snapshot shows one snapshot.
func (c *Client) Snapshot(ctx context.Context, id string) (*api.Snapshot, error) {
	var out api.Snapshot
	if err := c.Do(ctx, http.MethodGet, snapshotPath(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RestoreSnapshot makes a new sandbox from a snapshot.
func (c *Client) RestoreSnapshot(ctx context.Context, id string) (*api.Sandbox, error) {
	var out api.Sandbox
	if err := c.Do(ctx, http.MethodPost, snapshotPath(id)+"/restore", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSnapshot deletes a snapshot and its files.
func (c *Client) DeleteSnapshot(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, snapshotPath(id), nil, nil)
}

func snapshotPath(id string) string { return "/v1/snapshots/" + url.PathEscape(id) }
