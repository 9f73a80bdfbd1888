package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
)

// Deploy uploads a bundle (a tar.gz of a directory with agent.json) as a new
// version of its agent and makes it current.
func (c *Client) Deploy(ctx context.Context, tarGz []byte) (*api.AgentVersion, error) {
	return postBundle[api.AgentVersion](ctx, c, "/v1/agents", tarGz)
}

// postBundle posts a bundle (tar.gz) to path and decodes the JSON answer.
func postBundle[T any](ctx context.Context, c *Client, path string, tarGz []byte) (*T, error) {
	resp, err := c.Raw(ctx, http.MethodPost, path, bytes.NewReader(tarGz), "application/gzip")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v T
	if err := decodeJSON(resp.Body, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Preview makes a bundle (tar.gz) its agent's preview through a preview
// run (tested and recorded, never released): CallPreview reaches it,
// production keeps its version.
func (c *Client) Preview(ctx context.Context, tarGz []byte) (*api.AgentVersion, error) {
	return postBundle[api.AgentVersion](ctx, c, "/v1/previews", tarGz)
}

// EndPreview removes the agent's preview and its preview sessions.
func (c *Client) EndPreview(ctx context.Context, agent string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	return c.Do(ctx, http.MethodDelete, "/v1/agents/"+url.PathEscape(agent)+"/preview", nil, nil)
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

// DeleteAgent deletes an agent with every version and session (their
// state, snapshots, alarms and logs).
func (c *Client) DeleteAgent(ctx context.Context, name string) error {
	if p := api.CheckID("agent", api.IDAgent, name); p != nil {
		return p
	}
	return c.Do(ctx, http.MethodDelete, "/v1/agents/"+url.PathEscape(name), nil, nil)
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

// AllSessions lists the sessions of every agent the caller may list
// sessions of, agent by agent in the order Agents answers. An agent whose
// sessions the caller may not read (forbidden), or that is deleted while
// listing (not found), is left out.
func (c *Client) AllSessions(ctx context.Context) ([]api.Session, error) {
	agents, err := c.Agents(ctx)
	if err != nil {
		return nil, err
	}
	all := []api.Session{}
	for _, a := range agents {
		ss, err := c.Sessions(ctx, a.Name)
		switch {
		case api.IsKind(err, api.KindForbidden), api.IsKind(err, api.KindNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("sessions of agent %s: %w", a.Name, err)
		}
		all = append(all, ss...)
	}
	return all, nil
}

// checkSession refuses an agent name or session id the server would refuse,
// before anything is sent: a session id of "." or ".." would otherwise be
// cleaned out of the URL, and the server's redirect would take the request
// (as a GET) to another route.
func checkSession(agent, id string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	if p := api.CheckID("session", api.IDSession, id); p != nil {
		return p
	}
	return nil
}

func sessionPath(agent, id string) (string, error) {
	if err := checkSession(agent, id); err != nil {
		return "", err
	}
	return "/v1/agents/" + url.PathEscape(agent) + "/sessions/" + url.PathEscape(id), nil
}

// Session describes one session.
func (c *Client) Session(ctx context.Context, agent, id string) (*api.Session, error) {
	p, err := sessionPath(agent, id)
	if err != nil {
		return nil, err
	}
	var s api.Session
	if err := c.Do(ctx, http.MethodGet, p, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DeleteSession removes a session and everything it stored.
func (c *Client) DeleteSession(ctx context.Context, agent, id string) error {
	p, err := sessionPath(agent, id)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, p, nil, nil)
}

// Hibernate snapshots a live session now.
func (c *Client) Hibernate(ctx context.Context, agent, id string) (*api.Session, error) {
	p, err := sessionPath(agent, id)
	if err != nil {
		return nil, err
	}
	var s api.Session
	if err := c.Do(ctx, http.MethodPost, p+"/hibernate", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Call sends a request to a session's fetch handler and returns the raw
// response (any status); the caller closes its body. path may carry a query.
// An invalid agent or session id, or a path with "." or ".." segments (which
// would leave the session's URL), is refused before anything is sent, with
// a 400 invalid-identifier or bad-request *api.Problem.
func (c *Client) Call(ctx context.Context, agent, id, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	return c.call(ctx, agent, "", id, method, path, body, header)
}

// CallPreview is Call to a session of the agent's preview (agentcloud dev,
// PreviewDir): the preview version, with state of its own; production's
// session of the same id is another.
func (c *Client) CallPreview(ctx context.Context, agent, id, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	return c.call(ctx, agent, "/preview", id, method, path, body, header)
}

func (c *Client) call(ctx context.Context, agent, ns, id, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	if err := checkSession(agent, id); err != nil {
		return nil, err
	}
	u := *c.base
	p, q, _ := cutQuery(path)
	if err := checkDotSegments("path", p); err != nil {
		return nil, err
	}
	u.Path += "/agents/" + url.PathEscape(agent) + ns + "/sessions/" + url.PathEscape(id) + p
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

// SessionStateKeys lists the keys of a session's durable state (with the
// size of each value) that start with prefix, at most limit (0: 100).
func (c *Client) SessionStateKeys(ctx context.Context, agent, id, prefix string, limit int) (*api.SessionStateKeys, error) {
	p, err := sessionPath(agent, id)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	p += "/state"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out api.SessionStateKeys
	if err := c.Do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
