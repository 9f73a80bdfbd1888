package daemon

// The front door (gateway.go): internal/gateway in front of the router, the
// one chain every request passes. Its Identifier is security's verifying
// authenticator (client SVID, JWT-SVID, bootstrap admin token: a verified
// identity, never a header's claim); its Web Bot Auth key directories are
// fetched through the egress proxy as the web-bot-auth node with their own
// purpose; its limits on connections, header sizes and read timeouts are
// applied to the http.Server and its listener; its metrics go to the
// daemon's registry.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewayhttp"
	"github.com/agentcloud/agentcloud/internal/gateway/serverlimits"
	"github.com/agentcloud/agentcloud/internal/sandbox/e2bhttp"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
)

// frontDoor is what startGateway builds and startListener puts in front.
type frontDoor struct {
	gw     *gateway.Gateway
	limits serverlimits.Settings
	ln     atomic.Pointer[serverlimits.Listener] // set by guard
}

// startGateway builds the gateway; the listener puts it in front of the
// router (guard).
func (d *Daemon) startGateway(context.Context) error {
	gw, err := gateway.New(d.cfg.Gateway, gateway.Deps{
		Identifier: e2bhttp.Identifier{Next: securityhttp.GatewayIdentifier{Sec: d.sec}, Handler: d.e2b}, // E2B keys (e2b.go)
		Fetcher:    security.KeyDirectoryFetcher{Sec: d.sec, Proxy: d.proxy},
		Registerer: d.reg,
		Log:        d.log.With("component", "gateway"),
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	d.door = &frontDoor{gw: gw, limits: serverlimits.FromConfig(d.cfg.Gateway.Server, d.cfg.ReadTimeout.D(), d.cfg.WriteTimeout.D())}
	gatewayhttp.Routes(d.router, gw) // /v1/traffic
	return d.reg.Register(serverlimits.Collector(d.door.ln.Load))
}

// guard puts the gateway in front of srv's handler, applies the server
// limits to srv and returns ln under the connection caps.
func (d *Daemon) guard(srv *http.Server, ln net.Listener) net.Listener {
	srv.Handler = d.consoleAround(d.door.gw.Wrap, d.tel.Wrap(srv.Handler, gateway.TraceTrusted)) // console.go; spans inside the gateway, which knows whom to trust
	d.door.limits.Apply(srv)
	l := d.door.limits.Wrap(ln)
	d.door.ln.Store(l)
	return l
}
