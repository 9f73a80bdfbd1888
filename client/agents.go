package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/agentcloud/agentcloud/api"
)

// Deploy uploads a bundle (a tar.gz of a directory with agent.json) as a new
// version of its agent and makes it current.
func (c *Client) Deploy(ctx context.Context, tarGz []byte) (*api.AgentVersion, error) {
	resp, err := c.Raw(ctx, http.MethodPost, "/v1/agents", bytes.NewReader(tarGz), "application/gzip")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v api.AgentVersion
	if err := decodeJSON(resp.Body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Agents lists deployed agents.
func (c *Client) Agents(ctx context.Context) ([]api.Agent, error) {
	var l api.AgentList
	return l.Agents, c.Do(ctx, http.MethodGet, "/v1/agents", nil, &l)
}

// Agent returns one agent.
func (c *Client) Agent(ctx context.Context, name string) (*api.Agent, error) {
	var a api.Agent
	if err := c.Do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(name), nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Versions lists an agent's versions, oldest first.
func (c *Client) Versions(ctx context.Context, agent string) ([]api.AgentVersion, error) {
	var l api.VersionList
	return l.Versions, c.Do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(agent)+"/versions", nil, &l)
}

// Sessions lists an agent's sessions.
func (c *Client) Sessions(ctx context.Context, agent string) ([]api.Session, error) {
	var l api.SessionList
	return l.Sessions, c.Do(ctx, http.MethodGet, "/v1/agents/"+url.PathEscape(agent)+"/sessions", nil, &l)
}

func sessionPath(agent, id string) string {
	return "/v1/agents/" + url.PathEscape(agent) + "/sessions/" + url.PathEscape(id)
}

// Session describes one session.
func (c *Client) Session(ctx context.Context, agent, id string) (*api.Session, error) {
	var s api.Session
	if err := c.Do(ctx, http.MethodGet, sessionPath(agent, id), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeleteSession removes a session and everything it stored.
func (c *Client) DeleteSession(ctx context.Context, agent, id string) error {
	return c.Do(ctx, http.MethodDelete, sessionPath(agent, id), nil, nil)
}

// Hibernate snapshots a live session now.
func (c *Client) Hibernate(ctx context.Context, agent, id string) (*api.Session, error) {
	var s api.Session
	if err := c.Do(ctx, http.MethodPost, sessionPath(agent, id)+"/hibernate", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Call sends a request to a session's fetch handler and returns the raw
// response (any status); the caller closes its body. path may carry a query.
func (c *Client) Call(ctx context.Context, agent, id, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	u := *c.base
	p, q, _ := cutQuery(path)
	u.Path += "/agents/" + url.PathEscape(agent) + "/sessions/" + url.PathEscape(id) + p
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("call %s/%s: %w", agent, id, err)
	}
	return resp, nil
}

func cutQuery(path string) (string, string, bool) {
	for i := 0; i < len(path); i++ {
		if path[i] == '?' {
			return normPath(path[:i]), path[i+1:], true
		}
	}
	return normPath(path), "", false
}

func normPath(p string) string {
	if p == "" || p == "/" {
		return ""
	}
	if p[0] != '/' {
		return "/" + p
	}
	return p
}
