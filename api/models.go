package api

import "time"

// ModelProvider is an OpenAI-compatible upstream of the model gateway
// (POST/GET /v1/model-providers). Its API key is the secret named Secret,
// which the gateway puts in the Authorization header on the way out; agents
// never see it. The secret's allowed hosts must include BaseURL's host.
type ModelProvider struct {
	Name string `json:"name"`
	// BaseURL is the API root, e.g. https://api.example.com/v1; the gateway
	// appends /chat/completions and /embeddings.
	BaseURL string `json:"base_url"`
	// Secret names the stored secret holding the API key ("" for none).
	Secret string `json:"secret,omitempty"`
	// Models this provider serves: "gpt-x" (same name upstream) or
	// "alias=upstream" (requests for alias go to upstream here).
	Models []string `json:"models"`
	// Priority orders providers serving the same model: lower first.
	Priority int `json:"priority,omitempty"`
	// Timeout per attempt, a Go duration (default 30s). For streams it
	// bounds the wait for the response headers.
	Timeout string `json:"timeout,omitempty"`
	// Prices by model name (as listed in Models, alias or upstream name).
	Prices map[string]ModelPrice `json:"prices,omitempty"`
	// Trusted marks a provider the operator trusts with private data: only
	// a trusted provider may receive prompts from a session holding private
	// or secret data (default policy private-data-untrusted-model), and its
	// answers do not lower a session's integrity. Untrusted by default.
	Trusted bool `json:"trusted,omitempty"`
	// AllowPrivate lets calls to this provider reach a private or loopback
	// address (a local inference server, e.g. http://127.0.0.1:8000/v1);
	// the daemon's own API and NATS ports stay refused.
	AllowPrivate bool `json:"allow_private,omitempty"`
	// Created and By are set by the server.
	Created time.Time `json:"created,omitzero"`
	By      string    `json:"by,omitempty"`
}

// ModelPrice is the price of a model in USD per million tokens.
type ModelPrice struct {
	Input  float64 `json:"input"`
	Output float64 `json:"output"`
}

// ModelProviderList is the body of GET /v1/model-providers.
type ModelProviderList struct {
	Providers []ModelProvider `json:"providers"`
}

// ModelBudgetRequest is the body of PUT /v1/model-budgets: a token budget
// for an agent, or for one session of it when Session is set.
type ModelBudgetRequest struct {
	Agent   string `json:"agent"`
	Session string `json:"session,omitempty"`
	// Tokens is the total (prompt + completion) allowed; 0 removes the budget.
	Tokens int64 `json:"tokens"`
	// Reset zeroes the tokens used so far.
	Reset bool `json:"reset,omitempty"`
}

// ModelBudget is a budget and how much of it is spent or reserved.
type ModelBudget struct {
	Agent   string `json:"agent"`
	Session string `json:"session,omitempty"`
	Tokens  int64  `json:"tokens"`
	// Used counts settled tokens plus Reserved (in-flight estimates).
	Used     int64 `json:"used"`
	Reserved int64 `json:"reserved"`
}

// ModelBudgetList is the body of GET /v1/model-budgets.
type ModelBudgetList struct {
	Budgets []ModelBudget `json:"budgets"`
}

// UsageCounts are token, request and cost totals.
type UsageCounts struct {
	Requests         int64   `json:"requests"`
	CacheHits        int64   `json:"cache_hits"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CostUSD          float64 `json:"cost_usd"`
}

// Usage is the model usage of one caller: a session of an agent, or a
// user calling the API directly (Agent empty, User set).
type Usage struct {
	Agent   string `json:"agent,omitempty"`
	Session string `json:"session,omitempty"`
	User    string `json:"user,omitempty"`
	UsageCounts
	// ByProvider splits the totals by provider name.
	ByProvider map[string]UsageCounts `json:"by_provider,omitempty"`
	Updated    time.Time              `json:"updated,omitzero"`
}

// UsageReport is the body of GET /v1/usage: the matching records and their sum.
type UsageReport struct {
	Records []Usage     `json:"records"`
	Total   UsageCounts `json:"total"`
}

// ChatMessage is one message of a chat completion request (OpenAI format;
// content may also be an array of parts).
type ChatMessage struct {
	Role    string `json:"role"`
	Content any    `json:"content,omitempty"`
	Name    string `json:"name,omitempty"`
}

// ChatCompletionRequest documents POST /v1/chat/completions (OpenAI
// format). Fields not listed here are passed to the provider unchanged.
type ChatCompletionRequest struct {
	// Model is a model name or alias from the providers' Models, or
	// "provider:model" to pick one provider.
	Model       string        `json:"model"`
	Messages    []ChatMessage `json:"messages"`
	Stream      bool          `json:"stream,omitempty"`
	Temperature *float64      `json:"temperature,omitempty"`
	MaxTokens   int64         `json:"max_tokens,omitempty"`
	N           int64         `json:"n,omitempty"`
}

// ChatCompletion documents the (non-streaming) answer, as the provider sent it.
type ChatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index        int         `json:"index"`
		Message      ChatMessage `json:"message"`
		FinishReason string      `json:"finish_reason"`
	} `json:"choices"`
	Usage *TokenUsage `json:"usage,omitempty"`
}

// TokenUsage is the usage member of OpenAI responses.
type TokenUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// EmbeddingRequest documents POST /v1/embeddings (OpenAI format); input is
// a string, an array of strings, or token arrays.
type EmbeddingRequest struct {
	Model string `json:"model"`
	Input any    `json:"input"`
}

// EmbeddingResponse documents the answer of POST /v1/embeddings.
type EmbeddingResponse struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
	Usage *TokenUsage `json:"usage,omitempty"`
}
