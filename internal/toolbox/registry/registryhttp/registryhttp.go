// Package registryhttp serves the registry of upstream tools over HTTP:
// POST/GET /v1/tool-registry and /v1/tool-registry/{upstream} (show,
// refresh, approve, delete), administrators only by policy. It renders
// entries for the API (never a secret value), plugs added upstreams into
// the toolbox and takes removed ones out (Config.Sink), and audits every
// change.
//
// It owns no upstreams and fetches nothing: the registry pins, refreshes
// and quarantines; the security part checks credential secrets and keeps
// the audit stream (Config.CheckSecret, Config.Audit).
package registryhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
)

// AuditType is the audit event type of registry changes.
const AuditType = "toolregistry"

// ProviderSink is where registered upstreams are plugged in as toolbox
// providers (a *toolbox.Toolbox).
type ProviderSink interface {
	AddProvider(name string, p toolbox.Provider) error
	RemoveProvider(name string) bool
}

// Config configures a Handler.
type Config struct {
	// Registry serves the requests (required).
	Registry *registry.Registry
	// Sink, if set, gets each added upstream as a provider and loses each
	// removed one.
	Sink ProviderSink
	// CheckSecret refuses a credential secret the registry may not use.
	CheckSecret func(ctx context.Context, name string) error
	// Audit records one event of each change (required).
	Audit func(ctx context.Context, e api.AuditEvent) error
	// Changes, if set, runs approvals through the deploy pipeline (a
	// tool-pins run per approval) instead of pinning at once.
	Changes Changes
}

// Changes runs a configuration change through the deploy pipeline
// (pipelinehttp.ConfigChanger): target api.ConfigToolPins, name the
// upstream, value its api.ToolPins. async: answer at once.
type Changes interface {
	ChangeConfig(ctx context.Context, by httpapi.Principal, target, name string, value json.RawMessage, async bool) (api.PipelineRun, error)
}

// Handler serves the tool registry's routes.
type Handler struct{ cfg Config }

// New returns the registry's HTTP surface over cfg.
func New(cfg Config) *Handler { return &Handler{cfg: cfg} }

// Routes registers /v1/tool-registry and its per-upstream routes.
func (h *Handler) Routes(rt *httpapi.Router) {
	const tag = "tools"
	reg := h.cfg.Registry
	name := func(r *http.Request) string { return r.PathValue("upstream") }
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tool-registry", Tag: tag,
		Summary: "Register an upstream MCP server or OpenAPI document; its tools are pinned by hash (administrators only).",
		Request: api.ToolRegistryAddRequest{}, Response: api.ToolRegistryEntry{}, Status: http.StatusCreated,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.ToolRegistryAddRequest
			if err := httpapi.DecodeJSON(r, &in); err != nil {
				return err
			}
			if c := in.Credential; c != nil {
				if err := h.cfg.CheckSecret(r.Context(), c.Secret); err != nil {
					return err
				}
			}
			add := registry.AddRequest{Name: in.Name, MCPURL: in.MCPURL, OpenAPIURL: in.OpenAPIURL,
				OpenAPIDocument: in.OpenAPIDocument, BaseURL: in.BaseURL, RatePerMinute: in.RatePerMinute,
				AllowPrivate: in.AllowPrivate, By: caller(r).ID}
			if c := in.Credential; c != nil {
				add.Credential = &registry.Credential{Secret: c.Secret, Header: c.Header, Format: c.Format, Query: c.Query}
			}
			e, err := reg.Add(r.Context(), add)
			if err != nil {
				return err
			}
			if h.cfg.Sink != nil {
				if err := h.cfg.Sink.AddProvider(e.Name, reg.Provider(e.Name)); err != nil {
					return fmt.Errorf("plug in tool registry %s: %w", e.Name, err)
				}
			}
			h.audit(r, "toolregistry.add", e.Name, map[string]any{"kind": e.Kind, "url": e.URL, "tools": len(e.Tools)})
			httpapi.WriteJSON(w, http.StatusCreated, entryWire(e))
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/tool-registry", Tag: tag,
		Summary:  "List registered tool upstreams with each tool's pin and status (administrators only).",
		Response: api.ToolRegistryList{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			es, err := reg.List(r.Context())
			if err != nil {
				return err
			}
			out := api.ToolRegistryList{Upstreams: make([]api.ToolRegistryEntry, 0, len(es))}
			for _, e := range es {
				out.Upstreams = append(out.Upstreams, entryWire(e))
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "GET", Path: "/v1/tool-registry/{upstream}", Tag: tag,
		Summary:  "Show one registered tool upstream (administrators only).",
		Response: api.ToolRegistryEntry{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			e, err := reg.Get(r.Context(), name(r))
			if err != nil {
				return err
			}
			httpapi.WriteJSON(w, http.StatusOK, entryWire(e))
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tool-registry/{upstream}/refresh", Tag: tag,
		Summary:  "Fetch the upstream's tool definitions now; changed and new tools are quarantined (administrators only).",
		Response: api.ToolRegistryEntry{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			e, err := reg.Refresh(r.Context(), name(r))
			if err != nil {
				return err
			}
			h.audit(r, "toolregistry.refresh", e.Name, map[string]any{"quarantined": quarantined(e), "error": e.RefreshError})
			httpapi.WriteJSON(w, http.StatusOK, entryWire(e))
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tool-registry/{upstream}/approve", Tag: tag,
		Summary: "Re-pin quarantined tools (all, or those named) to the definitions pending for them, through a pipeline run (tool-pins) that pins exactly what it reviewed: 201 when pinned, 202 with the run when it waits for review, 422 pipeline-failed naming the stage (administrators only).",
		Request: api.ToolApproveRequest{}, Response: api.ToolApproveResult{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.ToolApproveRequest
			if r.ContentLength != 0 {
				if err := httpapi.DecodeJSON(r, &in); err != nil {
					return err
				}
			}
			if h.cfg.Changes != nil {
				return h.approveRun(w, r, name(r), in.Tools)
			}
			e, done, err := reg.Approve(r.Context(), name(r), in.Tools)
			if err != nil {
				return err
			}
			h.audit(r, "toolregistry.approve", e.Name, map[string]any{"tools": done})
			httpapi.WriteJSON(w, http.StatusOK, api.ToolApproveResult{Approved: append([]string{}, done...), Upstream: entryWire(e)})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/tool-registry/{upstream}", Tag: tag,
		Summary: "Unregister a tool upstream; its tools leave the toolbox (administrators only).",
		Status:  http.StatusNoContent, Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := reg.Remove(r.Context(), name(r)); err != nil {
				return err
			}
			if h.cfg.Sink != nil {
				_ = h.cfg.Sink.RemoveProvider(name(r))
			}
			h.audit(r, "toolregistry.remove", name(r), nil)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

// approveRun submits the approval of tools of upstream as a tool-pins run
// whose value is the pins in force with the approved tools' pending
// definitions, and answers like a deploy: 201 when the run passed, 202
// with Location when it waits or is still going; nothing to approve is a
// 200 with no run.
func (h *Handler) approveRun(w http.ResponseWriter, r *http.Request, upstream string, tools []string) error {
	reg := h.cfg.Registry
	pins, done, err := reg.Proposal(r.Context(), upstream, tools)
	if err != nil {
		return err
	}
	res := api.ToolApproveResult{Approved: append([]string{}, done...)}
	status := http.StatusOK
	if len(done) > 0 {
		v, _ := json.Marshal(api.ToolPins{Tools: pins})
		run, err := h.cfg.Changes.ChangeConfig(r.Context(), caller(r), api.ConfigToolPins, upstream, v,
			strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async"))
		if err != nil {
			return err
		}
		res.Run, res.RunState = run.ID, run.State
		w.Header().Set("Location", "/v1/pipeline/runs/"+run.ID)
		status = http.StatusAccepted
		if run.State == api.RunPassed {
			status = http.StatusCreated
		}
	}
	e, err := reg.Get(r.Context(), upstream)
	if err != nil {
		return err
	}
	res.Upstream = entryWire(e)
	h.audit(r, "toolregistry.approve", upstream, map[string]any{"tools": done, "run": res.Run, "run_state": res.RunState})
	httpapi.WriteJSON(w, status, res)
	return nil
}

func (h *Handler) audit(r *http.Request, action, name string, detail map[string]any) {
	_ = h.cfg.Audit(r.Context(), api.AuditEvent{Type: AuditType, Principal: caller(r).ID, Action: action,
		Resource: "ToolUpstream::" + name, Outcome: "allow", Detail: detail})
}

func quarantined(e registry.Entry) []string {
	var out []string
	for _, t := range e.Tools {
		if t.Status == registry.StatusQuarantined {
			out = append(out, t.Name)
		}
	}
	return out
}

// entryWire renders an entry for the API: never a secret value (the
// registry holds none), and the inline document left out.
func entryWire(e registry.Entry) api.ToolRegistryEntry {
	out := api.ToolRegistryEntry{Name: e.Name, Kind: e.Kind, URL: e.URL, BaseURL: e.BaseURL, Notes: e.Notes, RatePerMinute: e.RatePerMinute,
		AllowPrivate: e.AllowPrivate,
		RefreshError: e.RefreshError, CreatedBy: e.CreatedBy, Created: e.Created, Approved: e.Approved, Refreshed: e.Refreshed,
		Tools: make([]api.RegistryTool, 0, len(e.Tools))}
	if c := e.Credential; c != nil {
		out.Credential = &api.ToolCredential{Secret: c.Secret, Header: c.Header, Format: c.Format, Query: c.Query}
	}
	for _, t := range e.Tools {
		rt := api.RegistryTool{Name: e.Name + "." + t.Name, Tool: t.Name, Description: t.Description, InputSchema: t.InputSchema,
			Hash: t.Hash, Status: t.Status, Reason: t.Reason, PendingHash: t.PendingSum}
		if t.Op != nil {
			rt.Endpoint = t.Op.Method + " " + t.Op.Server + t.Op.Path
		}
		if len(rt.InputSchema) == 0 {
			rt.InputSchema = json.RawMessage("{}")
		}
		out.Tools = append(out.Tools, rt)
	}
	return out
}

// caller is the authenticated principal of r.
func caller(r *http.Request) httpapi.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return p
}
