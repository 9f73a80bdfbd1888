package modelgw

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
)

var timeZero time.Time

// InvokeAction is the Cedar action of completions and embeddings.
const InvokeAction = "model.invoke"

// CallerFunc tells who an authenticated request is for (its session, its
// agent, or its user).
type CallerFunc func(r *http.Request) (Caller, error)

// Routes registers the gateway's endpoints. Completions and embeddings
// take the InvokeAction (and Authorize per model); provider, budget and
// usage administration are for administrators.
func (g *Gateway) Routes(rt *httpapi.Router, callerOf CallerFunc) {
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/chat/completions", Tag: "models", Action: InvokeAction,
		Summary: "OpenAI-compatible chat completion through the configured providers (stream: true for server-sent events).",
		Request: api.ChatCompletionRequest{}, Response: api.ChatCompletion{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			return g.serve(w, r, callerOf, chatEndpoint)
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/embeddings", Tag: "models", Action: InvokeAction,
		Summary: "OpenAI-compatible embeddings through the configured providers.",
		Request: api.EmbeddingRequest{}, Response: api.EmbeddingResponse{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			return g.serve(w, r, callerOf, embedEndpoint)
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
			g.invalidate()
			ps, err := g.Providers(r.Context())
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
			rep, err := g.Usage(r.Context(), UsageFilter{Agent: q.Get("agent"), Session: q.Get("session"), User: q.Get("user")})
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, rep)
			return nil
		}})
}

// serve handles one completion or embedding request.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, callerOf CallerFunc, kind endpoint) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	c, err := callerOf(r)
	if err != nil {
		return err
	}
	cl, err := g.prepare(r.Context(), c, kind, body)
	if err != nil {
		return err
	}
	if cl.req.stream {
		return g.stream(r.Context(), w, cl)
	}
	res, err := g.run(r.Context(), cl)
	if err != nil {
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

// readBody reads a JSON request body within the router's size limit.
func readBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !jsonContentType(ct) {
		return nil, api.Errorf(api.KindUnsupportedMedia, "content type %q is not supported: send application/json", ct)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.Errorf(api.KindTooLarge, "request body is larger than the limit of %d bytes", mbe.Limit)
		}
		return nil, api.Errorf(api.KindBadRequest, "read request body: %v", err)
	}
	return body, nil
}

func jsonContentType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
