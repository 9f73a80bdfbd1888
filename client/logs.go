package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
)

// LogQuery selects entries of an agent's log stream.
type LogQuery struct {
	// Session, if set, keeps only that session's entries.
	Session string
	// After continues after this seq of the node asked (a previous
	// LogList's Next); in a cluster only that member answers.
	After uint64
	// Cursor continues where a previous LogList's (or a followed entry's)
	// Cursor says, on every member of a cluster.
	Cursor string
	// Limit caps the entries of one Logs answer (0: the server's most).
	Limit int
	// Preview reads the agent's preview sessions (agentcloud dev)
	// instead of production's.
	Preview bool
}

func logsPath(agent string, q LogQuery, follow bool) string {
	v := url.Values{}
	if q.Session != "" {
		v.Set("session", q.Session)
	}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Limit > 0 && !follow {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if follow {
		v.Set("follow", "true")
	}
	p := "/v1/agents/" + url.PathEscape(agent) + "/logs"
	if q.Preview {
		p = "/v1/agents/" + url.PathEscape(agent) + "/preview/logs"
	}
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p
}

// Logs reads the entries an agent's log stream keeps on the node
// (console.* output and request errors of its live sessions), oldest first.
func (c *Client) Logs(ctx context.Context, agent string, q LogQuery) (*api.LogList, error) {
	var l api.LogList
	if err := c.Do(ctx, http.MethodGet, logsPath(agent, q, false), nil, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// FollowLogs passes the kept entries of an agent's log stream, then each
// new one as it comes, to fn until fn returns an error, ctx ends or the
// server ends the stream (the agent was deleted, the node stops).
func (c *Client) FollowLogs(ctx context.Context, agent string, q LogQuery, fn func(api.LogEntry) error) error {
	resp, err := c.rawHeader(ctx, http.MethodGet, logsPath(agent, q, true), nil, "", http.Header{"Accept": {api.LogContentType}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readNDJSON(ctx, resp.Body, "log entry", fn)
}
