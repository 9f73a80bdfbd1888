package daemon

import (
	"context"
	"fmt"

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
	d.toolRegistry, err = registry.New(registry.Config{KV: kv, Doer: d.sec.RegistryDoer(d.proxy), Logger: d.log.With("component", "toolregistry")})
	if err != nil {
		return err
	}
	h := registryhttp.Config{Registry: d.toolRegistry, CheckSecret: d.sec.CheckCredentialSecret, Audit: d.sec.Audit().Record, Changes: d.configChanger()}
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
