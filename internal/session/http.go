package session

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// Authorization actions of the session routes (Cedar action names, except
// ActionAgentList, which any principal may ask: the answer is filtered).
const (
	ActionAgentDeploy   = "agent.deploy"
	ActionAgentRead     = "agent.read"
	ActionAgentList     = "agent.list"
	ActionSessionCall   = "session.call"
	ActionSessionRead   = "session.read"
	ActionSessionDelete = "session.delete"
)

// AgentResource is the authorization resource of /…/agents/{agent}/….
func AgentResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: "Agent", ID: r.PathValue("agent")}
}

// SessionResource is the authorization resource of /…/sessions/{session}/….
func SessionResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: "Session", ID: r.PathValue("session"), Parent: r.PathValue("agent")}
}

type filteringKey struct{}

// Filtering marks ctx as filtering a listing: an authorizer asked under it
// is checking items one by one for the caller, and need not audit each
// denial as an attempt.
func Filtering(ctx context.Context) context.Context {
	return context.WithValue(ctx, filteringKey{}, true)
}

// IsFiltering reports whether ctx was marked by Filtering.
func IsFiltering(ctx context.Context) bool { return ctx.Value(filteringKey{}) != nil }

// Routes registers the agent, session and session-traffic endpoints without
// per-item authorization checks (the router still authorizes each route).
func (m *Manager) Routes(r *httpapi.Router) { m.SecureRoutes(r, nil) }

// SecureRoutes registers the routes; authz, if not nil, is also asked inside
// handlers where the route alone cannot name the resource (the agent a
// bundle deploys) and filters lists to what the caller may read.
func (m *Manager) SecureRoutes(r *httpapi.Router, authz httpapi.Authorizer) {
	m.SetAuthorizer(authz)
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/agents", Tag: "agents",
		Summary:            "Deploy a bundle (tar.gz of a directory with agent.json) as a new immutable version and make it current.",
		RequestContentType: "application/gzip", Response: api.AgentVersion{}, Status: http.StatusCreated,
		Action: ActionAgentDeploy, Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{Type: "Agent"} },
		Handler: m.handleDeploy})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents", Tag: "agents", Summary: "List deployed agents (those the caller may read).",
		Action: ActionAgentList, Response: api.AgentList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			list, err := m.Agents(r.Context())
			if err != nil {
				return err
			}
			if authz != nil {
				p, _ := httpapi.PrincipalFrom(r.Context())
				fctx := Filtering(r.Context())
				kept := list[:0]
				for _, a := range list {
					if authz.Authorize(fctx, p, ActionAgentRead, httpapi.Resource{Type: "Agent", ID: a.Name}) == nil {
						kept = append(kept, a)
					}
				}
				list = kept
			}
			httpapi.WriteJSON(w, http.StatusOK, api.AgentList{Agents: list})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}", Tag: "agents", Summary: "Show an agent and its current manifest.",
		Action: ActionAgentRead, Resource: AgentResource,
		Response: api.Agent{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			a, err := m.Agent(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, a)
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/versions", Tag: "agents", Summary: "List an agent's versions, oldest first.",
		Action: ActionAgentRead, Resource: AgentResource,
		Response: api.VersionList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			vs, err := m.Versions(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.VersionList{Versions: vs})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/sessions", Tag: "sessions", Summary: "List an agent's sessions.",
		Action: ActionSessionRead, Resource: AgentResource,
		Response: api.SessionList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			ss, err := m.Sessions(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.SessionList{Sessions: ss})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/sessions/{session}", Tag: "sessions", Summary: "Show one session.",
		Action: ActionSessionRead, Resource: SessionResource,
		Response: api.Session{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			s, err := m.Session(r.Context(), r.PathValue("agent"), r.PathValue("session"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, s)
			return nil
		}})
	r.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/agents/{agent}/sessions/{session}", Tag: "sessions",
		Summary: "Delete a session with its state, snapshot and alarm.", Status: http.StatusNoContent,
		Action: ActionSessionDelete, Resource: SessionResource,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := m.Delete(r.Context(), r.PathValue("agent"), r.PathValue("session")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/agents/{agent}/sessions/{session}/hibernate", Tag: "sessions",
		Summary: "Hibernate a live session now (snapshot its heap and free the isolate).", Response: api.Session{},
		Action: ActionSessionCall, Resource: SessionResource,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			a, id := r.PathValue("agent"), r.PathValue("session")
			if err := m.Hibernate(r.Context(), a, id); err != nil {
				return err
			}
			s, err := m.Session(r.Context(), a, id)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, s)
			return nil
		}})
	traffic := httpapi.Route{Tag: "sessions", RawContentType: "*/*", Handler: m.handleTraffic, AnyQuery: true, // the agent's own URL
		Action: ActionSessionCall, Resource: SessionResource,
		Summary: "Send a request (any method, headers, body) to the session's fetch handler; the session is created on first use."}
	for _, p := range []string{"/agents/{agent}/sessions/{session}", "/agents/{agent}/sessions/{session}/{path...}"} {
		traffic.Path = p
		r.Handle(traffic)
	}
}

// handleDeploy loads the bundle; Deploy authorizes the deployer for the
// agent the manifest names (the route alone could not name it).
func (m *Manager) handleDeploy(w http.ResponseWriter, r *http.Request) error {
	b, err := bundle.LoadTarGz(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.Errorf(api.KindTooLarge, "bundle is larger than the request limit of %d bytes", mbe.Limit)
		}
		return bundleProblem(err)
	}
	v, err := m.Deploy(r.Context(), b)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, v)
	return nil
}

// bundleProblem turns a bundle error into a 4xx problem naming the field.
func bundleProblem(err error) error {
	var me *bundle.ManifestError
	if errors.As(err, &me) {
		p := api.Errorf(api.KindValidation, "%v", err)
		for _, fe := range me.Problems {
			p.Errors = append(p.Errors, api.FieldError{Field: fe.Field, Detail: fe.Problem + "; " + fe.Fix})
		}
		return p
	}
	return api.Errorf(api.KindBadRequest, "invalid bundle: %v", err)
}

// hopHeaders are not passed to or from agent code.
var hopHeaders = map[string]bool{"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true,
	"Upgrade": true, "Proxy-Authorization": true, "Te": true, "Trailer": true, "Authorization": true}

func (m *Manager) handleTraffic(w http.ResponseWriter, r *http.Request) error {
	agent, id := r.PathValue("agent"), r.PathValue("session")
	// The router checked agent and session against api.IDRules.
	body, err := readBody(r.Body, m.maxBody())
	if err != nil {
		return err
	}
	var u strings.Builder
	u.WriteString("http://")
	u.WriteString(r.Host)
	u.WriteString("/")
	u.WriteString(r.PathValue("path"))
	if r.URL.RawQuery != "" {
		u.WriteString("?")
		u.WriteString(r.URL.RawQuery)
	}
	req := isolate.Request{Method: r.Method, URL: u.String(), Body: body}
	for k, vs := range r.Header {
		if hopHeaders[k] {
			continue
		}
		for _, v := range vs {
			req.Headers = append(req.Headers, [2]string{k, v})
		}
	}
	resp, err := m.Call(r.Context(), agent, id, req)
	if err != nil {
		return err
	}
	h := w.Header()
	for _, kv := range resp.Headers {
		if !hopHeaders[http.CanonicalHeaderKey(kv[0])] {
			h.Add(kv[0], kv[1])
		}
	}
	status := resp.Status
	if status < 100 || status > 999 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.Copy(w, bytes.NewReader(resp.Body))
	return nil
}

// readBody reads a request body for a session, stopping at limit: a longer
// one is a 413 problem once limit+1 bytes have arrived, never buffered whole.
func readBody(r io.Reader, limit int) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.Errorf(api.KindTooLarge, "request body is larger than the limit of %d bytes", mbe.Limit)
		}
		return nil, api.Errorf(api.KindBadRequest, "read request body: %v", err)
	}
	if len(body) > limit {
		return nil, bodyTooLarge("request body", limit)
	}
	return body, nil
}

// bodyTooLarge is the 413 problem for a body over the session limit.
func bodyTooLarge(what string, limit int) error {
	return api.Errorf(api.KindTooLarge, "%s is larger than the session body limit of %d bytes (session_max_body_bytes)", what, limit)
}
