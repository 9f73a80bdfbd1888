// Package e2bhttp serves an E2B-compatible API over a *sandbox.Manager, so
// that code written for the e2b SDKs runs against agentcloud by changing
// only its API and sandbox URLs (both <node>/e2b): the control plane
// (create, list, get, kill, timeout, refreshes, pause, connect/resume,
// fork) in E2B's REST shapes with X-API-Key auth and {code, message}
// errors, and the data plane of envd, the agent E2B runs inside each sandbox: the
// process and filesystem Connect-RPC services over JSON and /files upload
// and download, routed by the E2b-Sandbox-Id header that the SDK sends
// when its sandbox URL is set. Every other route of E2B's API and envd's
// answers 501 (unsupported.go). It also serves /v1/e2b/keys, where
// principals get their API keys.
//
// It owns no sandboxes and no policy: the Manager and its tiers run them,
// and every call is decided by the Authorizer (Cedar) with the same
// actions and ownership as the /v1/sandboxes routes (sandbox.Action*). It
// authenticates its own routes (X-API-Key, or the envd access token
// answered by create and connect), because the E2B API has its own
// credential and error formats; everything else about a request (body
// limits, identifier rules, metrics) is the Router's.
package e2bhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Prefix is where the E2B-compatible API is mounted: users set both the
// SDK's API URL (E2B_API_URL) and its sandbox URL (E2B_SANDBOX_URL) to
// the node's address with this path.
const Prefix = "/e2b"

// EnvdVersion is the envd version answered to the SDKs, which switch
// features on by it: 0.6.4 has everything this package serves (stdin,
// the default user, octet-stream uploads).
const EnvdVersion = "0.6.4"

// Config configures a Handler.
type Config struct {
	// Manager runs the sandboxes; nil answers 503 with Unavailable.
	Manager     *sandbox.Manager
	Unavailable error
	// Tiers are the Manager's tiers (template names).
	Tiers []sandbox.Tier
	// Keys is the bucket of API keys; NodeKey (32 bytes or more) signs
	// envd access tokens.
	Keys    store.KV
	NodeKey []byte
	// Authorizer decides every call (Cedar), as for /v1/sandboxes.
	Authorizer httpapi.Authorizer
	// BeforeCreate stamps the owner on a new sandbox's spec (and may
	// refuse); Visible filters listings. Both see the request with the
	// key's principal in its context (httpapi.PrincipalFrom).
	BeforeCreate func(r *http.Request, spec *sandbox.Spec) error
	Visible      func(r *http.Request, info sandbox.Info) bool
	// MaxTimeout caps timeouts in requests; default 24h.
	MaxTimeout time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Handler serves the E2B-compatible API.
type Handler struct {
	cfg   Config
	m     *sandbox.Manager
	keys  *Keys
	log   *slog.Logger
	procs *procTable
}

// New returns a Handler; register it with Routes.
func New(cfg Config) (*Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 24 * time.Hour
	}
	if cfg.Manager == nil && cfg.Unavailable == nil {
		cfg.Unavailable = fmt.Errorf("sandboxes are not enabled on this node")
	}
	if cfg.Keys == nil || len(cfg.NodeKey) < 32 || cfg.Authorizer == nil {
		return nil, fmt.Errorf("e2bhttp: Keys, a NodeKey of 32 bytes or more and an Authorizer are required")
	}
	return &Handler{cfg: cfg, m: cfg.Manager, log: cfg.Logger, procs: newProcTable(),
		keys: &Keys{kv: cfg.Keys, nodeKey: cfg.NodeKey, now: cfg.Now}}, nil
}

// Close stops the processes started through envd and waits for them.
func (h *Handler) Close() { h.procs.closeAll() }

const tag = "e2b"

// Routes registers the key routes and the E2B-compatible API.
func (h *Handler) Routes(r *httpapi.Router) {
	r.Handle(httpapi.Route{Method: "POST", Path: "/v1/e2b/keys", Tag: tag, Action: "token.request", Status: http.StatusCreated,
		Summary: "Issue an API key of the E2B-compatible API (/e2b) for the caller: send it as X-API-Key; it acts as the caller. Shown once.",
		Request: api.E2BKeyRequest{}, Response: api.E2BKey{}, Handler: h.handleIssueKey})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/e2b/keys", Tag: tag, Action: "token.request",
		Summary:  "List the caller's E2B API keys (an administrator's: all), without their secret part.",
		Response: api.E2BKeyList{}, Handler: h.handleListKeys})
	r.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/e2b/keys/{token}", Tag: tag, Action: "token.revoke", Status: http.StatusNoContent,
		Summary: "Revoke an E2B API key by id (and the envd access tokens answered for it).", Handler: h.handleRevokeKey})
	h.controlRoutes(r)
	h.envdRoutes(r)
	h.unsupportedRoutes(r)
}

// e2bRoute registers a route of the E2B API: authenticated by this
// package (Public to the Router), any query (E2B clients send their own).
func e2bRoute(r *httpapi.Router, method, path, summary string, fn httpapi.HandlerFunc) {
	r.Handle(httpapi.Route{Method: method, Path: Prefix + path, Tag: tag, Public: true, AnyQuery: true,
		RawContentType: "application/json", Summary: summary, Handler: fn})
}

func (h *Handler) handleIssueKey(w http.ResponseWriter, r *http.Request) error {
	p, _ := httpapi.PrincipalFrom(r.Context())
	var req api.E2BKeyRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	k, err := h.keys.Issue(r.Context(), p, req.Name)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusCreated, k)
	return nil
}

func (h *Handler) handleListKeys(w http.ResponseWriter, r *http.Request) error {
	p, _ := httpapi.PrincipalFrom(r.Context())
	out, err := h.keys.List(r.Context(), p)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) handleRevokeKey(w http.ResponseWriter, r *http.Request) error {
	p, _ := httpapi.PrincipalFrom(r.Context())
	if err := h.keys.Revoke(r.Context(), p, r.PathValue("token")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// authorize asks the Authorizer whether p may do action on sandbox id
// ("" for the platform: create and list).
func (h *Handler) authorize(ctx context.Context, p caller, action, id string) error {
	return h.cfg.Authorizer.Authorize(ctx, p.Principal, action, httpapi.Resource{Type: "Sandbox", ID: id})
}

// authorizeSandbox authorizes action on live sandbox id. A denial on a
// sandbox that is not the caller's own, or that does not exist, answers
// not found, the same for both: another tenant learns nothing of it (and
// E2B clients take 404 as "gone").
func (h *Handler) authorizeSandbox(ctx context.Context, p caller, action, id string) error {
	err := h.authorize(ctx, p, action, id)
	if err == nil {
		_, err = h.m.Info(id)
		if err == nil {
			return nil
		}
	}
	if o, ok := h.m.OwnershipOf(id); ok && o.Owner == p.ID && api.IsKind(err, api.KindForbidden) {
		return err
	}
	return api.Errorf(api.KindNotFound, "sandbox %s not found: it was killed, timed out, or is not yours", id)
}

// caller is who called: the principal of an API key (or of an envd
// access token) and the key's hash.
type caller struct {
	httpapi.Principal
	keyHash string
}

// available answers the reason sandboxes are off, or nil.
func (h *Handler) available() error {
	if h.m == nil {
		return api.Errorf(api.KindUnavailable, "sandboxes are unavailable on this node: %v", h.cfg.Unavailable)
	}
	return nil
}

// apiError is the error body of the E2B control plane and of envd's REST
// routes: the HTTP status again, and a message.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeAPIError answers err in the E2B REST error format.
func (h *Handler) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	e := h.apiErrorOf(r, err)
	writeJSON(w, e.Code, e)
}

// apiErrorOf is err in the E2B REST error format. Internal errors are
// logged and answered without their detail.
func (h *Handler) apiErrorOf(r *http.Request, err error) apiError {
	p := api.AsProblem(err)
	msg := p.Detail
	if p.Kind() == api.KindInternal {
		h.log.ErrorContext(r.Context(), "e2b api", "path", r.URL.Path, "err", err)
		msg = "internal error (request " + httpapi.RequestID(r.Context()) + ")"
	}
	status := p.Kind().Status()
	if p.Status != 0 {
		status = p.Status
	}
	return apiError{Code: status, Message: msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// authenticate checks an envd request's credentials: its envd access
// token for sandbox id when it carries one, else its API key.
func (h *Handler) authenticate(r *http.Request, id string) (httpapi.Principal, string, error) {
	if tok := r.Header.Get("X-Access-Token"); tok != "" {
		return h.keys.AuthenticateEnvd(r.Context(), tok, id)
	}
	return h.keys.Authenticate(r.Context(), r.Header.Get("X-API-Key"))
}

// Identify returns the principal of a request to the E2B API that carries
// an API key or an envd access token, for the front door's scheduling
// (ok false without them, or on another path). It grants nothing: the
// routes authenticate again, and other routes never accept these
// credentials.
func (h *Handler) Identify(r *http.Request) (p httpapi.Principal, ok bool, err error) {
	if !strings.HasPrefix(r.URL.Path, Prefix+"/") {
		return p, false, nil
	}
	if key := r.Header.Get("X-API-Key"); key != "" {
		p, _, err = h.keys.Authenticate(r.Context(), key)
		return p, true, err
	}
	if tok := r.Header.Get("X-Access-Token"); tok != "" {
		p, _, err = h.keys.AuthenticateEnvd(r.Context(), tok, r.Header.Get("E2b-Sandbox-Id"))
		return p, true, err
	}
	return p, false, nil
}
