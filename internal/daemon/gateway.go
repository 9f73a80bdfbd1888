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
	"strings"

	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewayhttp"
	"github.com/agentcloud/agentcloud/internal/gateway/serverlimits"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/agentcloud/agentcloud/internal/security/securityhttp"
	"github.com/prometheus/client_golang/prometheus"
)

// frontDoor is what startGateway builds and startListener puts in front.
type frontDoor struct {
	gw     *gateway.Gateway
	limits serverlimits.Settings
	ln     *serverlimits.Listener // set by guard
}

// startGateway builds the gateway; the listener puts it in front of the
// router (guard).
func (d *Daemon) startGateway(context.Context) error {
	gw, err := gateway.New(d.cfg.Gateway, gateway.Deps{
		Identifier: e2bIdentifier{gatewayIdentifier{d.sec}, d.e2b}, // e2b.go
		Fetcher:    keyDirectoryFetcher{d},
		Registerer: d.reg,
		Log:        d.log.With("component", "gateway"),
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	d.door = frontDoor{gw: gw, limits: serverlimits.FromConfig(d.cfg.Gateway.Server, d.cfg.ReadTimeout.D(), d.cfg.WriteTimeout.D())}
	gatewayhttp.Routes(d.router, gw) // /v1/traffic
	return d.reg.Register(connCollector{&d.door})
}

// connCollector reports the listener's connection caps at scrape time.
type connCollector struct{ door *frontDoor }

var (
	descConnsOpen = prometheus.NewDesc("agentcloud_gateway_connections_open", "Connections open on the API listener.", nil, nil)
	descConnsShed = prometheus.NewDesc("agentcloud_gateway_connections_shed_total",
		"Connections closed on accept for being over max_conns_per_ip or max_conns.", nil, nil)
)

func (c connCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnsOpen
	ch <- descConnsShed
}

func (c connCollector) Collect(ch chan<- prometheus.Metric) {
	ln := c.door.ln
	if ln == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descConnsOpen, prometheus.GaugeValue, float64(ln.Open()))
	ch <- prometheus.MustNewConstMetric(descConnsShed, prometheus.CounterValue, float64(ln.Shed()))
}

// guard puts the gateway in front of srv's handler, applies the server
// limits to srv and returns ln under the connection caps.
func (d *Daemon) guard(srv *http.Server, ln net.Listener) net.Listener {
	srv.Handler = d.door.gw.Wrap(srv.Handler)
	d.door.limits.Apply(srv)
	d.door.ln = d.door.limits.Wrap(ln)
	return d.door.ln
}

// gatewayIdentifier identifies requests with security's verification,
// without auditing (the router audits the failures it refuses).
type gatewayIdentifier struct{ sec *security.Security }

func (i gatewayIdentifier) Identify(r *http.Request) (gateway.Identity, error) {
	cert := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if !cert && r.Header.Get("Authorization") == "" {
		return gateway.Identity{}, nil // anonymous or Web Bot Auth
	}
	p, err := i.sec.Identify(r)
	if err != nil {
		return gateway.Identity{}, err
	}
	id := gateway.Identity{Kind: gateway.Kind(p.Kind), ID: p.ID, Method: gateway.MethodJWT}
	switch {
	case cert:
		id.Method = gateway.MethodMTLS
	case p.Kind == string(identity.KindAdmin):
		id.Method = gateway.MethodToken
	}
	if p.Kind == string(identity.KindSession) {
		if pp, err := identity.ParsePrincipal(i.sec.TrustDomain(), p.ID); err == nil {
			id.Agent = pp.Agent
		}
	}
	return id, nil
}

// verifiedAuth is the router's Authenticator: a request the gateway has
// already identified by verified credentials (gatewayIdentifier) is not
// verified a second time; every other request is authenticated (and its
// failure audited) by security.
type verifiedAuth struct{ securityhttp.Auth }

func (a verifiedAuth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if c, ok := gateway.ClassFrom(r.Context()); ok {
		switch c.Identity.Method {
		case gateway.MethodMTLS, gateway.MethodJWT, gateway.MethodToken:
			return httpapi.Principal{ID: c.Identity.ID, Kind: string(c.Identity.Kind)}, nil
		}
	}
	return a.Auth.Authenticate(r)
}

// keyDirectoryFetcher fetches Web Bot Auth key directories through the
// egress proxy as the web-bot-auth node (security.KeyDirectoryCaller):
// https GETs of the well-known path to public hosts only, audited.
type keyDirectoryFetcher struct{ d *Daemon }

func (f keyDirectoryFetcher) Fetch(ctx context.Context, url string) (*http.Response, error) {
	if !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("key directory %q: not https", url)
	}
	caller, err := f.d.sec.KeyDirectoryCaller()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	req.Header.Set("Accept", "application/http-message-signatures-directory+json")
	return f.d.proxy.Do(ctx, caller, req)
}
