package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
)

// providerSink is where registered upstreams are plugged in as toolbox
// providers: the *toolbox.Toolbox, once wired (see attachToolRegistry).
type providerSink interface {
	AddProvider(name string, p toolbox.Provider) error
	RemoveProvider(name string) bool
}

// auditToolRegistry is the audit event type of registry changes.
const auditToolRegistry = "toolregistry"

// startToolRegistry opens the registry of upstream tools and its routes,
// and plugs every registered upstream into the toolbox if one is attached.
// Must be called after d.router and d.proxy exist.
func (d *Daemon) startToolRegistry(ctx context.Context) error {
	kv, err := d.store.KV(ctx, registry.Bucket, store.KVOptions{Description: "registered tool upstreams and their pinned definitions"})
	if err != nil {
		return err
	}
	d.toolRegistry, err = registry.New(registry.Config{KV: kv, Doer: d.registryDo, Logger: d.log.With("component", "toolregistry")})
	if err != nil {
		return err
	}
	d.toolRegistryRoutes()
	return d.attachToolRegistry(ctx, d.toolSink)
}

// attachToolRegistry plugs the registry into the toolbox: every upstream
// registered now, and those added or removed later through the API.
func (d *Daemon) attachToolRegistry(ctx context.Context, sink providerSink) error {
	d.toolSink = sink
	if d.toolRegistry == nil || sink == nil {
		return nil
	}
	return d.plugUpstreams(ctx)
}

func (d *Daemon) plugUpstreams(ctx context.Context) error {
	names, err := d.toolRegistry.Names(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := d.toolSink.AddProvider(n, d.toolRegistry.Provider(n)); err != nil {
			return fmt.Errorf("tool registry %s: %w", n, err)
		}
	}
	return nil
}

func (d *Daemon) closeToolRegistry() {
	if d.toolRegistry != nil {
		d.toolRegistry.Close()
		d.toolRegistry = nil
	}
}

// ToolRegistryProvider returns the toolbox provider of a registered
// upstream, for tests that call upstream tools without the toolbox.
func (d *Daemon) ToolRegistryProvider(name string) toolbox.Provider {
	return d.toolRegistry.Provider(name)
}

// registryDo sends an upstream request through the egress proxy as
// spiffe://TD/node/tool-registry: only to the upstream's hosts, with its
// credential's placeholder filled in by the secret hook (and, for a query
// parameter, here), audited. A secret value the upstream echoes back is
// scrubbed (secrets.Scrubber) before anyone reads it.
func (d *Daemon) registryDo(ctx context.Context, up registry.Upstream, req *http.Request) (*http.Response, error) {
	rc := &security.RegistryCall{Upstream: up.Name, Hosts: up.Hosts, AllowPrivate: up.AllowPrivate}
	if up.Credential != nil {
		rc.Secret = up.Credential.Secret
	}
	caller, err := d.sec.RegistryCaller(rc)
	if err != nil {
		return nil, err
	}
	if strings.Contains(req.URL.RawQuery, "secret") {
		if err := d.sec.SubstituteRegistryQuery(ctx, rc, caller, req); err != nil {
			return nil, err
		}
	}
	resp, err := d.proxy.Do(ctx, caller, req)
	if errors.Is(err, egress.ErrDenied) || errors.Is(err, egress.ErrPendingApproval) {
		if errors.Is(err, egress.ErrForbiddenAddress) && !up.AllowPrivate {
			return nil, api.Errorf(api.KindForbidden, "%s (an upstream on a private or loopback address needs allow_private: agentcloud tools add --allow-private)", rc.Redact(err.Error()))
		}
		return nil, api.Errorf(api.KindForbidden, "%s", rc.Redact(err.Error()))
	}
	if err != nil {
		return nil, errors.New(rc.Redact(err.Error()))
	}
	if sc := rc.QueryScrubber(); sc != nil {
		sc.Header(resp.Header)
		if resp.ContentLength != 0 {
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
		}
		resp.Body = sc.Reader(resp.Body, func() { sc.Header(resp.Trailer) })
	}
	return resp, nil
}

func (d *Daemon) toolRegistryRoutes() {
	const tag = "tools"
	rt, reg := d.router, d.toolRegistry
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
				if err := d.sec.CheckCredentialSecret(r.Context(), c.Secret); err != nil {
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
			if d.toolSink != nil {
				if err := d.toolSink.AddProvider(e.Name, reg.Provider(e.Name)); err != nil {
					return fmt.Errorf("plug in tool registry %s: %w", e.Name, err)
				}
			}
			d.auditRegistry(r, "toolregistry.add", e.Name, map[string]any{"kind": e.Kind, "url": e.URL, "tools": len(e.Tools)})
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
			d.auditRegistry(r, "toolregistry.refresh", e.Name, map[string]any{"quarantined": quarantined(e), "error": e.RefreshError})
			httpapi.WriteJSON(w, http.StatusOK, entryWire(e))
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "POST", Path: "/v1/tool-registry/{upstream}/approve", Tag: tag,
		Summary: "Re-pin quarantined tools (all, or those named) to what the upstream serves now (administrators only).",
		Request: api.ToolApproveRequest{}, Response: api.ToolApproveResult{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			var in api.ToolApproveRequest
			if r.ContentLength != 0 {
				if err := httpapi.DecodeJSON(r, &in); err != nil {
					return err
				}
			}
			e, done, err := reg.Approve(r.Context(), name(r), in.Tools)
			if err != nil {
				return err
			}
			d.auditRegistry(r, "toolregistry.approve", e.Name, map[string]any{"tools": done})
			httpapi.WriteJSON(w, http.StatusOK, api.ToolApproveResult{Approved: append([]string{}, done...), Upstream: entryWire(e)})
			return nil
		}})
	rt.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/tool-registry/{upstream}", Tag: tag,
		Summary: "Unregister a tool upstream; its tools leave the toolbox (administrators only).",
		Status:  http.StatusNoContent, Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := reg.Remove(r.Context(), name(r)); err != nil {
				return err
			}
			if d.toolSink != nil {
				_ = d.toolSink.RemoveProvider(name(r))
			}
			d.auditRegistry(r, "toolregistry.remove", name(r), nil)
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func (d *Daemon) auditRegistry(r *http.Request, action, name string, detail map[string]any) {
	_ = d.sec.Audit().Record(r.Context(), api.AuditEvent{Type: auditToolRegistry, Principal: caller(r).ID, Action: action,
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
