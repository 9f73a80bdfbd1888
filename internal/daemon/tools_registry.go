package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/toolbox"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry"
	"github.com/agentcloud/agentcloud/internal/toolbox/registry/registryhttp"
)

// startToolRegistry opens the registry of upstream tools and its routes
// (registryhttp), and plugs every registered upstream into the toolbox.
// Must be called after d.router, d.proxy and startTools.
func (d *Daemon) startToolRegistry(ctx context.Context) error {
	kv, err := d.store.KV(ctx, registry.Bucket, store.KVOptions{Description: "registered tool upstreams and their pinned definitions"})
	if err != nil {
		return err
	}
	d.toolRegistry, err = registry.New(registry.Config{KV: kv, Doer: d.registryDo, Logger: d.log.With("component", "toolregistry")})
	if err != nil {
		return err
	}
	h := registryhttp.Config{Registry: d.toolRegistry, CheckSecret: d.sec.CheckCredentialSecret, Audit: d.sec.Audit().Record}
	if d.tools.box != nil {
		h.Sink = d.tools.box
	}
	registryhttp.New(h).Routes(d.router)
	return d.plugUpstreams(ctx, h.Sink)
}

// plugUpstreams adds every registered upstream to sink as a provider;
// those added or removed later go through the API (registryhttp).
func (d *Daemon) plugUpstreams(ctx context.Context, sink registryhttp.ProviderSink) error {
	if sink == nil {
		return nil
	}
	names, err := d.toolRegistry.Names(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := sink.AddProvider(n, d.toolRegistry.Provider(n)); err != nil {
			return fmt.Errorf("tool registry %s: %w", n, err)
		}
	}
	return nil
}

func (d *Daemon) closeToolRegistry(context.Context) error {
	if d.toolRegistry != nil {
		d.toolRegistry.Close()
		d.toolRegistry = nil
	}
	return nil
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
