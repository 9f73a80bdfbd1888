// Package sessionhttp serves the agent and session API over a
// *session.Manager: deploy (POST /v1/agents), agents and their versions,
// sessions (list, show, delete, hibernate), agent deletion, log streams, and the session traffic route
// /agents/{agent}/sessions/{session}/{path...} that hands any request to a
// session's fetch handler. It turns bundle and body-size errors into
// problem+json answers, filters listings to what the caller may read, and
// adapts the API authorizer to the session Manager's DeployAuthorizer.
//
// It owns no sessions, deploys nothing itself and does not authenticate:
// the Manager does the work, and the Router's middleware has authenticated
// and authorized the route before a handler runs.
package sessionhttp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/session"
)

// Config configures a Handler.
type Config struct {
	// Manager serves the requests (required).
	Manager *session.Manager
	// Authorizer, if set, filters GET /v1/agents to the agents the caller
	// may read (session.ActionAgentRead). Deploys are authorized by the
	// Manager itself (session.Config.DeployAuthorizer, see
	// AuthorizeDeploys), against the record they replace.
	Authorizer httpapi.Authorizer
	// Deploy, if set, takes a loaded bundle of POST /v1/agents over and
	// answers it (the daemon sends it through the deploy pipeline);
	// without it the Manager deploys at once.
	Deploy func(w http.ResponseWriter, r *http.Request, b *bundle.Bundle) error
	// Log receives what cannot reach a client any more (a streamed
	// response that failed after its head was sent); nil: discarded.
	Log *slog.Logger
	// Card is what public agents' cards say of the node (public.go).
	Card CardInfo
	// Node is this node's name: its log entries say it, and log cursors
	// keep its position under it.
	Node string
}

// Handler serves the agent and session API.
type Handler struct {
	m      *session.Manager
	authz  httpapi.Authorizer
	deploy func(w http.ResponseWriter, r *http.Request, b *bundle.Bundle) error
	log    *slog.Logger
	// cardInfo is what agent cards say of the node.
	cardInfo CardInfo
	// public coalesces identical cacheable public GETs (public.go).
	public httpapi.Coalescer
	// node is this node's name (Config.Node).
	node string
}

// New returns a Handler; register it with Routes.
func New(cfg Config) *Handler {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{m: cfg.Manager, authz: cfg.Authorizer, deploy: cfg.Deploy, log: log, cardInfo: cfg.Card, node: cfg.Node}
}

// AgentResource is the authorization resource of /…/agents/{agent}/….
func AgentResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: "Agent", ID: r.PathValue("agent")}
}

// SessionResource is the authorization resource of /…/sessions/{session}/….
func SessionResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: "Session", ID: r.PathValue("session"), Parent: r.PathValue("agent")}
}

// AuthorizeDeploys adapts the API authorizer to session.DeployAuthorizer:
// a deploy is the action session.ActionAgentDeploy on the Agent it names.
func AuthorizeDeploys(authz httpapi.Authorizer) session.DeployAuthorizer {
	return deployAuthz{authz}
}

type deployAuthz struct{ authz httpapi.Authorizer }

func (a deployAuthz) AuthorizeDeploy(ctx context.Context, p session.Principal, agent string) error {
	return a.authz.Authorize(ctx, httpapi.Principal{ID: p.ID, Kind: p.Kind}, session.ActionAgentDeploy,
		httpapi.Resource{Type: "Agent", ID: agent})
}

// principal is the authenticated caller of r as a session.Principal (the
// zero Principal when there is none).
func principal(r *http.Request) session.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return session.Principal{ID: p.ID, Kind: p.Kind}
}

const deploySummary = "Deploy a bundle (tar.gz of a directory with agent.json): the new immutable version goes through the deploy " +
	"pipeline (validate, build, test, policy gate, review, sign, record, roll out). 201 once its run passed; 202 with the run " +
	"(Location) when it waits for review or runs longer than the deploy wait, or at once with Prefer: respond-async; " +
	"422 pipeline-failed naming the failing stage."

// Routes registers the agent, session and session-traffic endpoints (the
// router authorizes each route; listings are filtered per item).
func (h *Handler) Routes(r *httpapi.Router) {
	m := h.m
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/agents", Tag: "agents",
		Summary:            deploySummary,
		RequestContentType: "application/gzip", Response: api.AgentVersion{}, Status: http.StatusCreated,
		Action: session.ActionAgentDeploy, Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{Type: "Agent"} },
		Handler: h.handleDeploy})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents", Tag: "agents", Summary: "List deployed agents (those the caller may read).",
		Action: session.ActionAgentList, Response: api.AgentList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			list, err := m.Agents(r.Context())
			if err != nil {
				return err
			}
			if h.authz != nil {
				p, _ := httpapi.PrincipalFrom(r.Context())
				fctx := session.Filtering(r.Context())
				kept := list[:0]
				for _, a := range list {
					if h.authz.Authorize(fctx, p, session.ActionAgentRead, httpapi.Resource{Type: "Agent", ID: a.Name}) == nil {
						kept = append(kept, a)
					}
				}
				list = kept
			}
			httpapi.WriteJSON(w, http.StatusOK, api.AgentList{Agents: list})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}", Tag: "agents", Summary: "Show an agent and its current manifest.",
		Action: session.ActionAgentRead, Resource: AgentResource,
		Response: api.Agent{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			a, err := m.Agent(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, a)
			return nil
		}})
	h.deleteAgentRoute(r) // logs.go
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/versions", Tag: "agents", Summary: "List an agent's versions, oldest first.",
		Action: session.ActionAgentRead, Resource: AgentResource,
		Response: api.VersionList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			vs, err := m.Versions(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.VersionList{Versions: vs})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/sessions", Tag: "sessions", Summary: "List an agent's sessions.",
		Action: session.ActionSessionRead, Resource: AgentResource,
		Response: api.SessionList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			ss, err := m.Sessions(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, api.SessionList{Sessions: ss})
			return nil
		}})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/sessions/{session}", Tag: "sessions", Summary: "Show one session.",
		Action: session.ActionSessionRead, Resource: SessionResource,
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
		Action: session.ActionSessionDelete, Resource: SessionResource,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := m.Delete(r.Context(), r.PathValue("agent"), r.PathValue("session")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/agents/{agent}/sessions/{session}/hibernate", Tag: "sessions",
		Summary: "Hibernate a live session now (snapshot its heap and free the isolate).", Response: api.Session{},
		Action: session.ActionSessionCall, Resource: SessionResource,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			a, id := r.PathValue("agent"), r.PathValue("session")
			s, err := m.HibernateSession(r.Context(), a, id)
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, s)
			return nil
		}})
	h.trafficRoutes(r)
	h.previewRoutes(r) // preview.go
	h.stateRoute(r)    // state.go
	h.publicRoutes(r)  // public.go
	h.logsRoute(r)     // logs.go
}

// trafficRoutes registers the session traffic route, with and without a
// path after the session.
func (h *Handler) trafficRoutes(r *httpapi.Router) {
	traffic := httpapi.Route{Tag: "sessions", RawContentType: "*/*", Handler: h.handleTraffic, AnyQuery: true, // the agent's own URL
		Action: session.ActionSessionCall, Resource: SessionResource,
		Summary: "Send a request (any method, headers, body) to the session's fetch handler; the session is created on first use."}
	for _, p := range []string{"/agents/{agent}/sessions/{session}", "/agents/{agent}/sessions/{session}/{path...}"} {
		traffic.Path = p
		r.Handle(traffic)
	}
}

// handleDeploy loads the bundle; Deploy authorizes the deployer for the
// agent the manifest names (the route alone could not name it).
func (h *Handler) handleDeploy(w http.ResponseWriter, r *http.Request) error {
	b, err := bundle.LoadTarGz(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.Errorf(api.KindTooLarge, "bundle is larger than the request limit of %d bytes", mbe.Limit)
		}
		return bundleProblem(err)
	}
	if h.deploy != nil {
		return h.deploy(w, r, b)
	}
	v, err := h.m.Deploy(r.Context(), principal(r), b)
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

// handleTraffic hands the request to the session's fetch handler and
// writes its response.
func (h *Handler) handleTraffic(w http.ResponseWriter, r *http.Request) error {
	// The router checked agent and session against api.IDRules.
	return h.traffic(w, r, r.PathValue("agent"))
}

// traffic hands r to session {session} of agent (an agent, or the
// internal name of its preview) and writes its response.
func (h *Handler) traffic(w http.ResponseWriter, r *http.Request, agent string) error {
	id := r.PathValue("session")
	body, err := readBody(r.Body, h.m.MaxBodyBytes())
	if err != nil {
		return err
	}
	var u strings.Builder
	path := httpapi.EscapedRest(r, "path") // as sent: a %3F stays in the path
	u.Grow(len("http://") + len(r.Host) + 2 + len(path) + len(r.URL.RawQuery))
	u.WriteString("http://")
	u.WriteString(r.Host)
	u.WriteString("/")
	u.WriteString(path)
	if r.URL.RawQuery != "" {
		u.WriteString("?")
		u.WriteString(r.URL.RawQuery)
	}
	req := isolate.Request{Method: r.Method, URL: u.String(), Body: body, Headers: make([][2]string, 0, len(r.Header))}
	for k, vs := range r.Header {
		if hopHeaders[k] && k != "Upgrade" { // agents look for "upgrade: websocket"
			continue
		}
		for _, v := range vs {
			req.Headers = append(req.Headers, [2]string{k, v})
		}
	}
	sink := newHTTPSink(w, r)
	req.Sink = sink
	resp, err := h.m.Call(r.Context(), agent, id, req)
	if sink.started {
		sink.done()
		if err != nil {
			// The head is out: the client can only learn of the failure
			// from a body that does not end properly.
			h.log.WarnContext(r.Context(), "streamed response failed", "agent", agent, "session", id, "err", err)
			panic(http.ErrAbortHandler)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if resp.Status == http.StatusSwitchingProtocols {
		return h.serveSocket(w, r, agent, resp)
	}
	writeHead(w, resp)
	_, _ = w.Write(resp.Body)
	return nil
}

// canonicalNames maps the lower-case names agents' responses mostly carry
// (a Headers object lower-cases every name) to their canonical form, so
// writing them allocates no new name per response.
var canonicalNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Disposition",
		"Cache-Control", "Etag", "Last-Modified", "Location", "Set-Cookie", "Vary", "Date", "Expires",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
		"X-Request-Id", "Retry-After", "Www-Authenticate"} {
		m[strings.ToLower(k)] = k
	}
	return m
}()

// canonicalName is http.CanonicalHeaderKey(k), without an allocation for a
// common name given in lower case.
func canonicalName(k string) string {
	if c, ok := canonicalNames[k]; ok {
		return c
	}
	return http.CanonicalHeaderKey(k)
}

// writeHead writes an agent's response status and headers.
func writeHead(w http.ResponseWriter, resp isolate.Response) {
	hdr := w.Header()
	for _, kv := range resp.Headers {
		if k := canonicalName(kv[0]); !hopHeaders[k] {
			hdr[k] = append(hdr[k], kv[1]) // hdr.Add would canonicalize again
		}
	}
	status := resp.Status
	if status < 100 || status > 999 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
}

// readBody reads a request body for a session, stopping at limit: a longer
// one is a 413 problem once limit+1 bytes have arrived, never buffered whole.
func readBody(r io.Reader, limit int) ([]byte, error) {
	if r == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.Errorf(api.KindTooLarge, "request body is larger than the limit of %d bytes", mbe.Limit)
		}
		return nil, api.Errorf(api.KindBadRequest, "read request body: %v", err)
	}
	if len(body) > limit {
		return nil, session.BodyTooLarge("request body", limit)
	}
	return body, nil
}

// BundleProblem turns a bundle loading error into a 4xx problem naming the
// field (for other routes that take a bundle).
func BundleProblem(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return api.Errorf(api.KindTooLarge, "bundle is larger than the request limit of %d bytes", mbe.Limit)
	}
	return bundleProblem(err)
}
