// Package client is the Go SDK for the agentcloud HTTP API. It imports only
// the standard library and api/, so programs can embed it without pulling in
// the daemon. Errors from the server are returned as *api.Problem.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// DefaultServer is where a local daemon listens by default.
const DefaultServer = "http://127.0.0.1:7070"

// Client talks to one agentcloud server.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (for TLS settings, proxies, tests).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client for server (e.g. http://127.0.0.1:7070) using a bearer token.
func New(server, token string, opts ...Option) (*Client, error) {
	if server == "" {
		server = DefaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want http(s)://host:port", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, token: token, hc: &http.Client{Timeout: 0}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Server returns the base URL.
func (c *Client) Server() string { return c.base.String() }

// Do sends a JSON request (in may be nil) and decodes a JSON answer into out
// (which may be nil). Non-2xx answers are returned as *api.Problem.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.Raw(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := decodeJSON(resp.Body, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

func decodeJSON(r io.Reader, out any) error {
	if err := json.NewDecoder(r).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// Raw sends a request and returns the response if its status is 2xx; the
// caller closes the body. Other statuses become *api.Problem.
func (c *Client) Raw(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	return c.rawHeader(ctx, method, path, body, contentType, nil)
}

// rawHeader is Raw with extra request headers.
func (c *Client) rawHeader(ctx context.Context, method, path string, body io.Reader, contentType string, hdr http.Header) (*http.Response, error) {
	u := *c.base
	p, q, _ := strings.Cut(path, "?")
	if err := checkDotSegments("path", p); err != nil {
		return nil, err
	}
	u.Path += p
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil && contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeProblem(resp)
}

// checkDotSegments refuses a request path with a "." or ".." segment (an
// identifier of "." or ".." put into a path): the server cleans such a path
// and redirects, and following the redirect would send the request, as a
// GET, to another route.
func checkDotSegments(field, p string) error {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return api.FieldErrorf(api.KindBadRequest, field, "%s %q has a %q segment, which the server would resolve to another route; use identifiers other than . and ..", field, p, seg)
		}
	}
	return nil
}

func decodeProblem(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var p api.Problem
	if err := json.Unmarshal(b, &p); err != nil || p.Type == "" {
		return &api.Problem{Type: "about:blank", Title: http.StatusText(resp.StatusCode),
			Status: resp.StatusCode, Detail: strings.TrimSpace(string(b))}
	}
	return &p
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// WhoAmI returns the principal the server sees for this client.
func (c *Client) WhoAmI(ctx context.Context) (*api.WhoAmI, error) {
	var w api.WhoAmI
	if err := c.Do(ctx, http.MethodGet, "/v1/whoami", nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Ready reports nil when /readyz answers 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.Do(ctx, http.MethodGet, "/readyz", nil, nil)
}

// WaitReady polls /readyz until it answers 200 or ctx ends.
func (c *Client) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := c.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
	}
}
