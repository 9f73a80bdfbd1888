package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
)

// Traffic returns the front door's state: the concurrency limit, every
// priority level and the top busiest flows (GET /v1/traffic;
// administrators).
func (c *Client) Traffic(ctx context.Context, top int) (*api.Traffic, error) {
	var out api.Traffic
	if err := c.Do(ctx, http.MethodGet, "/v1/traffic?top="+strconv.Itoa(top), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TrafficFlows returns at most limit flows of level ("" for every level),
// busiest first (GET /v1/traffic/flows; administrators).
func (c *Client) TrafficFlows(ctx context.Context, level string, limit int) (*api.TrafficFlows, error) {
	return c.TrafficFlowsBy(ctx, level, limit, "")
}

// TrafficFlowsBy is TrafficFlows in an order: "rate" (the default) or
// "rejected" (the most limited first).
func (c *Client) TrafficFlowsBy(ctx context.Context, level string, limit int, by string) (*api.TrafficFlows, error) {
	q := url.Values{}
	if by != "" {
		q.Set("by", by)
	}
	if level != "" {
		q.Set("level", level)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	p := "/v1/traffic/flows"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out api.TrafficFlows
	if err := c.Do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
