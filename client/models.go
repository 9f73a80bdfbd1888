package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/agentcloud/agentcloud/api"
)

// AddModelProvider creates or replaces a model provider.
func (c *Client) AddModelProvider(ctx context.Context, p api.ModelProvider) (*api.ModelProvider, error) {
	var out api.ModelProvider
	if err := c.Do(ctx, http.MethodPost, "/v1/model-providers", p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ModelProviders lists the model providers in fallback order.
func (c *Client) ModelProviders(ctx context.Context) ([]api.ModelProvider, error) {
	var l api.ModelProviderList
	if err := c.Do(ctx, http.MethodGet, "/v1/model-providers", nil, &l); err != nil {
		return nil, err
	}
	return l.Providers, nil
}

// RemoveModelProvider deletes a model provider.
func (c *Client) RemoveModelProvider(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/model-providers/"+url.PathEscape(name), nil, nil)
}

// SetModelBudget sets (tokens 0: removes) a token budget.
func (c *Client) SetModelBudget(ctx context.Context, req api.ModelBudgetRequest) (*api.ModelBudget, error) {
	var out api.ModelBudget
	if err := c.Do(ctx, http.MethodPut, "/v1/model-budgets", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ModelBudgets lists token budgets (one agent's when agent is set).
func (c *Client) ModelBudgets(ctx context.Context, agent string) ([]api.ModelBudget, error) {
	p := "/v1/model-budgets"
	if agent != "" {
		p += "?agent=" + url.QueryEscape(agent)
	}
	var l api.ModelBudgetList
	if err := c.Do(ctx, http.MethodGet, p, nil, &l); err != nil {
		return nil, err
	}
	return l.Budgets, nil
}

// Usage reports model usage; empty arguments match everything.
func (c *Client) Usage(ctx context.Context, agent, session, user string) (*api.UsageReport, error) {
	q := url.Values{}
	for k, v := range map[string]string{"agent": agent, "session": session, "user": user} {
		if v != "" {
			q.Set(k, v)
		}
	}
	p := "/v1/usage"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var rep api.UsageReport
	if err := c.Do(ctx, http.MethodGet, p, nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// ChatCompletion sends an OpenAI chat completion request (any JSON value,
// e.g. map or api.ChatCompletionRequest) and returns the raw answer and
// whether it came from the gateway's cache.
func (c *Client) ChatCompletion(ctx context.Context, req any) (json.RawMessage, bool, error) {
	return c.modelCall(ctx, "/v1/chat/completions", req)
}

// Embeddings sends an OpenAI embeddings request and returns the raw answer.
func (c *Client) Embeddings(ctx context.Context, req any) (json.RawMessage, error) {
	b, _, err := c.modelCall(ctx, "/v1/embeddings", req)
	return b, err
}

func (c *Client) modelCall(ctx context.Context, path string, req any) (json.RawMessage, bool, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	resp, err := c.Raw(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json")
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false, fmt.Errorf("read answer: %w", err)
	}
	return out, resp.Header.Get("X-Agentcloud-Cache") == "hit", nil
}
