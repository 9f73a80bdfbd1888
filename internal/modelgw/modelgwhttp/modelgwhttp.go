// Package modelgwhttp serves the model gateway's HTTP API over a
// *modelgw.Gateway: the OpenAI-compatible POST /v1/chat/completions (JSON,
// or server-sent events with stream: true) and POST /v1/embeddings, and the
// administration of providers (/v1/model-providers), token budgets
// (/v1/model-budgets) and usage (/v1/usage). It reads and checks request
// bodies (JSON content type, the router's size limit) and tells the gateway
// who calls (Config.Caller).
//
// It owns no providers, budgets or usage records and sends nothing
// upstream: the Gateway does. It does not authenticate; the Router's
// middleware has done that and checked the route's action before a handler
// runs.
package modelgwhttp

import (
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/modelgw"
)

// CallerFunc tells who an authenticated request is for (its session, its
// agent, or its user).
type CallerFunc func(r *http.Request) (modelgw.Caller, error)

// Config configures a Handler.
type Config struct {
	Gateway *modelgw.Gateway // required
	Caller  CallerFunc       // required: who a completion or embedding is for
}

// Handler serves the gateway's API.
type Handler struct {
	g        *modelgw.Gateway
	callerOf CallerFunc
}

// New returns a Handler; register it with Routes.
func New(cfg Config) *Handler {
	return &Handler{g: cfg.Gateway, callerOf: cfg.Caller}
}

// Routes registers the gateway's endpoints. Completions and embeddings
// take modelgw.InvokeAction (and the gateway authorizes per model);
// provider, budget and usage administration are for administrators.
func (h *Handler) Routes(rt *httpapi.Router) {
	g := h.g
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/chat/completions", Tag: "models", Action: modelgw.InvokeAction,
		Summary: "OpenAI-compatible chat completion through the configured providers (stream: true for server-sent events).",
		Request: api.ChatCompletionRequest{}, Response: api.ChatCompletion{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			return h.serve(w, r, true)
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/embeddings", Tag: "models", Action: modelgw.InvokeAction,
		Summary: "OpenAI-compatible embeddings through the configured providers.",
		Request: api.EmbeddingRequest{}, Response: api.EmbeddingResponse{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			return h.serve(w, r, false)
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/model-providers", Tag: "models", Status: http.StatusCreated,
		Summary: "Add or replace a model provider (base URL, API key secret, models, priority, prices).",
		Request: api.ModelProvider{}, Response: api.ModelProvider{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var p api.ModelProvider
			if err := httpapi.DecodeJSON(r, &p); err != nil {
				return err
			}
			if pr, ok := httpapi.PrincipalFrom(r.Context()); ok {
				p.By = pr.ID
			}
			out, err := g.PutProvider(r.Context(), p)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusCreated, out)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/model-providers", Tag: "models",
		Summary: "List model providers in fallback order.", Response: api.ModelProviderList{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			ps, err := g.ListProviders(r.Context())
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.ModelProviderList{Providers: ps})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/model-providers/{provider}", Tag: "models", Status: http.StatusNoContent,
		Summary: "Remove a model provider.",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := g.DeleteProvider(r.Context(), r.PathValue("provider")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "PUT", Path: "/v1/model-budgets", Tag: "models",
		Summary: "Set (or with tokens 0 remove) the token budget of an agent or of one of its sessions.",
		Request: api.ModelBudgetRequest{}, Response: api.ModelBudget{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var req api.ModelBudgetRequest
			if err := httpapi.DecodeJSON(r, &req); err != nil {
				return err
			}
			b, err := g.SetBudget(r.Context(), req)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, b)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/model-budgets", Tag: "models",
		Summary: "List token budgets (?agent=A for one agent's).", Response: api.ModelBudgetList{},
		Query: []httpapi.QueryParam{{Name: "agent", Description: "only this agent's budgets"}},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			bs, err := g.Budgets(r.Context(), r.URL.Query().Get("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.ModelBudgetList{Budgets: bs})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/usage", Tag: "models",
		Summary: "Model usage and cost per session (?agent=A&session=S, or ?user=U).", Response: api.UsageReport{},
		Query: []httpapi.QueryParam{
			{Name: "agent", Description: "only this agent's sessions"},
			{Name: "session", Description: "only this session (with agent)"},
			{Name: "user", Description: "only calls made by this API user"},
		},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			q := r.URL.Query()
			rep, err := g.Usage(r.Context(), modelgw.UsageFilter{Agent: q.Get("agent"), Session: q.Get("session"), User: q.Get("user")})
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, rep)
			return nil
		}})
}

// serve handles one completion (chat) or embedding request.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, chat bool) error {
	body, err := httpapi.ReadJSON(r)
	if err != nil {
		return err
	}
	c, err := h.callerOf(r)
	if err != nil {
		return err
	}
	var res *modelgw.Result
	if chat {
		res, err = h.g.ServeChat(r.Context(), w, c, body)
	} else {
		res, err = h.g.Embed(r.Context(), c, body)
	}
	if err != nil || res == nil { // nil: streamed to w
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Agentcloud-Provider", res.Provider)
	if res.CacheHit {
		w.Header().Set("X-Agentcloud-Cache", "hit")
	} else {
		w.Header().Set("X-Agentcloud-Cache", "miss")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Body)
	return nil
}
