package client

import (
	"context"
	"net/http"

	"github.com/agentcloud/agentcloud/api"
)

// ClusterStatus returns the cluster's members, their health, versions and
// partitions, as the daemon this client talks to sees them.
func (c *Client) ClusterStatus(ctx context.Context) (*api.ClusterStatus, error) {
	var s api.ClusterStatus
	if err := c.Do(ctx, http.MethodGet, "/v1/cluster/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DrainNode makes the daemon this client talks to hand all its sessions'
// partitions to the other members and waits until it owns none (or the
// daemon's bound, 60 s, passes); it keeps serving by forwarding.
func (c *Client) DrainNode(ctx context.Context) (*api.NodeDrain, error) {
	var d api.NodeDrain
	if err := c.Do(ctx, http.MethodPost, "/v1/node/drain", nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
