package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// HandlerFunc serves a request; a returned error becomes a problem+json
// answer (if nothing was written yet).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Route describes one endpoint: how it is served and how it is documented.
type Route struct {
	Method  string // GET, POST, ...; "" for any method
	Path    string // ServeMux pattern path, e.g. /v1/sandboxes/{id}
	Summary string
	Tag     string
	// Request and Response are zero values of the wire types (nil if none);
	// the OpenAPI document is derived from them.
	Request  any
	Response any
	// Status is the success status (default 200).
	Status int
	// Public routes skip authentication.
	Public bool
	// RawContentType marks routes whose response is not JSON (e.g. /metrics).
	RawContentType string
	// Streams marks JSON routes whose answer may stay open (a follow
	// query): identical requests never wait for each other's answer.
	Streams bool
	// RequestContentType marks routes whose request body is not JSON.
	RequestContentType string
	// Query lists the query parameters the route reads; requests with
	// others are refused (checkQuery). AnyQuery routes pass their query
	// string on as data (a session's own URL) and are not checked.
	Query    []QueryParam
	AnyQuery bool
	// Action names the operation for authorization (e.g. "session.call").
	// A protected route without one is allowed to admins only.
	Action string
	// Resource extracts what the request acts on (nil: the platform).
	Resource func(r *http.Request) Resource
	Handler  HandlerFunc

	params []string // path wildcards, checked against their identifier rules
}

// Resource is what a request acts on, for authorization.
type Resource struct {
	Type string // e.g. "Agent", "Session", "Sandbox", "Secret"; "" = the platform
	ID   string
	// Parent scopes the ID (a session's agent).
	Parent string
}

// Authorizer decides whether p may perform action on res. It returns an
// api.KindForbidden problem (with a reason the caller can act on) to deny.
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, action string, res Resource) error
}

// Router is an http.Handler made of documented routes.
type Router struct {
	// mux holds the routes; it tells an unmatched request's 404, 405 and
	// redirect apart. serve holds them too, plus a catch-all for what no
	// route matches, so a matched request is matched once.
	mux     *http.ServeMux
	serve   *http.ServeMux
	routes  []Route
	log     *slog.Logger
	auth    Authenticator
	authz   Authorizer
	metrics *Metrics
	maxBody int64
	// coalesce shares the answers of identical reads in flight.
	coalesce Coalescer
}

// Options configures a Router.
type Options struct {
	Logger       *slog.Logger
	Auth         Authenticator
	Authz        Authorizer
	Metrics      *Metrics
	MaxBodyBytes int64
}

// NewRouter returns an empty router.
func NewRouter(o Options) *Router {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rt := &Router{mux: http.NewServeMux(), serve: http.NewServeMux(), log: o.Logger, auth: o.Auth, authz: o.Authz, metrics: o.Metrics, maxBody: o.MaxBodyBytes}
	rt.serve.Handle("/", http.HandlerFunc(rt.unmatched))
	return rt
}

// Handle registers a route. Every endpoint goes through here, so every
// endpoint is in the OpenAPI document and behind the middleware chain.
func (rt *Router) Handle(r Route) {
	pattern := r.Path
	if r.Method != "" {
		pattern = r.Method + " " + r.Path
	}
	r.params = routeParams(r.Path)
	h := rt.wrap(pattern, r)
	rt.mux.Handle(pattern, h)
	rt.serve.Handle(pattern, h)
	rt.routes = append(rt.routes, r)
}

// Routes lists the registered routes sorted by path then method.
func (rt *Router) Routes() []Route {
	out := append([]Route(nil), rt.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// ServeHTTP dispatches to a route, or answers 404/405 as problem+json.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if perr := checkSegments(r.URL.Path); perr != nil {
		// The mux would clean the path and redirect (307, keeping the
		// method) to another route: an identifier of "." or ".." (or an
		// empty one) must not move a request elsewhere.
		rt.wrap("unmatched", Route{Public: true, Handler: func(http.ResponseWriter, *http.Request) error { return perr }}).ServeHTTP(w, r)
		return
	}
	rt.serve.ServeHTTP(w, r) // sets r.Pattern and path values
}

// unmatched answers what no route matched (serve's catch-all).
func (rt *Router) unmatched(w http.ResponseWriter, r *http.Request) {
	h, pattern := rt.mux.Handler(r)
	if pattern != "" {
		// serve has every route mux has, so this does not happen; if it
		// did, the route still gets the request, through mux.
		rt.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux decide between 404, 405 and redirects, then speak problem+json.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	fallback := rt.wrap("unmatched", Route{Public: true, AnyQuery: true, Handler: func(w http.ResponseWriter, r *http.Request) error {
		switch rec.Code {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.Header().Get("Allow"))
			return api.Errorf(api.KindMethodNotAllowed, "method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, rec.Header().Get("Allow"))
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			return nil
		default:
			return api.Errorf(api.KindNotFound, "no route for %s %s; see /openapi.json", r.Method, strings.ReplaceAll(r.URL.Path, "\n", ""))
		}
	}})
	fallback.ServeHTTP(w, r)
}
