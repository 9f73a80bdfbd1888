package modelgw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// Result is a non-streaming answer.
type Result struct {
	// Body is the provider's JSON answer, unchanged.
	Body     []byte
	Provider string
	CacheHit bool
}

// call is a request on its way: parsed, authorized, resolved.
type call struct {
	caller Caller
	req    *request
	routes []route
}

// prepare parses body, asks Authorize and resolves the model.
func (g *Gateway) prepare(ctx context.Context, c Caller, kind endpoint, body []byte) (*call, error) {
	req, err := parseRequest(kind, body, g.cfg.ImageTokens)
	if err != nil {
		return nil, err
	}
	if g.cfg.Authorize != nil {
		if err := g.cfg.Authorize(ctx, c, req.model); err != nil {
			return nil, err
		}
	}
	routes, err := g.resolve(ctx, req.model)
	if err != nil {
		return nil, err
	}
	if g.cfg.AuthorizeProvider != nil {
		var first error
		kept := routes[:0]
		for _, rt := range routes {
			if err := g.cfg.AuthorizeProvider(ctx, c, rt.provider); err != nil {
				if first == nil {
					first = err
				}
				continue
			}
			kept = append(kept, rt)
		}
		if len(kept) == 0 {
			return nil, first
		}
		routes = kept
	}
	return &call{caller: c, req: req, routes: routes}, nil
}

// Chat answers an OpenAI chat completion request without streaming.
func (g *Gateway) Chat(ctx context.Context, c Caller, body []byte) (*Result, error) {
	return g.ServeChat(ctx, nil, c, body)
}

// ServeChat answers an OpenAI chat completion request like Chat, except
// that a request with stream: true is answered on w: the provider's
// server-sent events are written to it as they arrive (with the status,
// Content-Type, X-Agentcloud-Provider and X-Agentcloud-Cache headers), and
// the Result is nil. With w nil, such a request is refused.
func (g *Gateway) ServeChat(ctx context.Context, w http.ResponseWriter, c Caller, body []byte) (*Result, error) {
	cl, err := g.prepare(ctx, c, chatEndpoint, body)
	if err != nil {
		return nil, err
	}
	if cl.req.stream {
		if w == nil {
			return nil, api.FieldErrorf(api.KindValidation, "stream", "stream: true is not available here; use POST /v1/chat/completions over HTTP")
		}
		return nil, g.stream(ctx, w, cl)
	}
	return g.run(ctx, cl)
}

// Embed answers an OpenAI embeddings request.
func (g *Gateway) Embed(ctx context.Context, c Caller, body []byte) (*Result, error) {
	cl, err := g.prepare(ctx, c, embedEndpoint, body)
	if err != nil {
		return nil, err
	}
	return g.run(ctx, cl)
}

// run serves a prepared non-streaming call: cache, reserve, send, settle, record.
func (g *Gateway) run(ctx context.Context, cl *call) (*Result, error) {
	var key string
	if g.cache != nil && cl.req.cacheable() {
		k, err := cl.req.cacheKey(cacheScope(cl.caller), cl.routes)
		if err == nil {
			key = k
			if hit, ok := g.cache.get(key); ok {
				if err := g.answered(ctx, cl, hit.provider); err != nil {
					return nil, err
				}
				g.m.calls.WithLabelValues("cache_hit").Inc()
				g.record(cl.caller, spend{provider: hit.provider, cacheHit: true})
				return &Result{Body: hit.body, Provider: hit.provider, CacheHit: true}, nil
			}
		}
	}
	completion := cl.req.completionBound(g.cfg.DefaultMaxTokens)
	res, err := g.reserve(ctx, cl.caller, cl.req.promptBound+completion)
	if err != nil {
		g.outcome(err)
		return nil, err
	}
	capTokens := int64(0)
	if res.active() {
		capTokens = g.cfg.DefaultMaxTokens
	}
	ans, err := g.send(ctx, cl.caller, cl.req, cl.routes, capTokens)
	if err != nil {
		res.settle(0)
		g.outcome(err)
		return nil, err
	}
	u := usageOf(ans.data)
	prompt, comp := cl.req.promptBound, completion
	if u != nil {
		prompt, comp = u.PromptTokens, u.CompletionTokens
	}
	res.settle(prompt + comp)
	g.spent(cl.caller, ans.route, prompt, comp)
	if key != "" {
		g.cache.put(key, ans.data, ans.route.provider.Name)
	}
	if err := g.answered(ctx, cl, ans.route.provider.Name); err != nil {
		return nil, err
	}
	return &Result{Body: ans.data, Provider: ans.route.provider.Name}, nil
}

// answered runs Config.Answered for the provider named, one of cl's routes.
func (g *Gateway) answered(ctx context.Context, cl *call, provider string) error {
	if g.cfg.Answered == nil {
		return nil
	}
	for _, rt := range cl.routes {
		if rt.provider.Name == provider {
			return g.cfg.Answered(ctx, cl.caller, rt.provider)
		}
	}
	return g.cfg.Answered(ctx, cl.caller, api.ModelProvider{Name: provider})
}

// spent settles the books of a call that a provider answered.
func (g *Gateway) spent(c Caller, rt route, prompt, completion int64) {
	g.m.calls.WithLabelValues("ok").Inc()
	g.m.tokens.WithLabelValues(rt.provider.Name, "prompt").Add(float64(prompt))
	g.m.tokens.WithLabelValues(rt.provider.Name, "completion").Add(float64(completion))
	g.record(c, spend{provider: rt.provider.Name, prompt: prompt, completion: completion, cost: rt.cost(prompt, completion)})
}

// outcome counts a failed call.
func (g *Gateway) outcome(err error) {
	if api.IsKind(err, api.KindBudgetExceeded) {
		g.m.calls.WithLabelValues("budget_exceeded").Inc()
		return
	}
	g.m.calls.WithLabelValues("error").Inc()
}

// cacheScope is who may share cached answers: the sessions of one agent,
// or one API user. Another tenant's identical prompt is not answered from
// (and cannot probe) this one's entries.
func cacheScope(c Caller) string {
	if c.Agent != "" {
		return "agent:" + c.Agent
	}
	return c.User
}

// usageOf reads the usage member of an answer (nil if absent).
func usageOf(data []byte) *api.TokenUsage {
	var v struct {
		Usage *api.TokenUsage `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	return v.Usage
}

// stream serves a prepared streaming call: the provider's server-sent
// events are written to w as they arrive, the usage chunk included, and
// the budget is settled from that chunk (or at the reservation without one).
func (g *Gateway) stream(ctx context.Context, w http.ResponseWriter, cl *call) error {
	completion := cl.req.completionBound(g.cfg.DefaultMaxTokens)
	res, err := g.reserve(ctx, cl.caller, cl.req.promptBound+completion)
	if err != nil {
		g.outcome(err)
		return err
	}
	capTokens := int64(0)
	if res.active() {
		capTokens = g.cfg.DefaultMaxTokens
	}
	ans, err := g.send(ctx, cl.caller, cl.req, cl.routes, capTokens)
	if err != nil {
		res.settle(0)
		g.outcome(err)
		return err
	}
	defer ans.body.Close()
	if err := g.answered(ctx, cl, ans.route.provider.Name); err != nil {
		res.settle(cl.req.promptBound + completion)
		g.outcome(err)
		return err
	}
	ct := ans.header.Get("Content-Type")
	if ct == "" {
		ct = "text/event-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Agentcloud-Provider", ans.route.provider.Name)
	w.Header().Set("X-Agentcloud-Cache", "miss")
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(timeZero) // streams outlive the server's write timeout
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	u, perr := pipeSSE(w, rc, io.LimitReader(ans.body, g.cfg.MaxResponseBytes))
	prompt, comp := cl.req.promptBound, completion
	if u != nil {
		prompt, comp = u.PromptTokens, u.CompletionTokens
	}
	res.settle(prompt + comp)
	g.spent(cl.caller, ans.route, prompt, comp)
	if perr != nil && !errors.Is(perr, io.EOF) {
		g.cfg.Logger.WarnContext(ctx, "model stream ended early", "provider", ans.route.provider.Name, "err", perr)
	}
	return nil
}

// timeZero clears a deadline.
var timeZero time.Time

// pipeSSE copies server-sent events line by line, flushing at the end of
// each event, and returns the last usage member seen in a data line.
func pipeSSE(w io.Writer, rc *http.ResponseController, body io.Reader) (*api.TokenUsage, error) {
	br := bufio.NewReaderSize(body, 32<<10)
	var usage *api.TokenUsage
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return usage, werr
			}
			if data, ok := bytes.CutPrefix(line, []byte("data:")); ok && bytes.Contains(data, []byte(`"usage"`)) {
				if u := usageOf(bytes.TrimSpace(data)); u != nil {
					usage = u
				}
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				_ = rc.Flush()
			}
		}
		if err != nil {
			_ = rc.Flush()
			if errors.Is(err, io.EOF) {
				return usage, nil
			}
			return usage, err
		}
	}
}
