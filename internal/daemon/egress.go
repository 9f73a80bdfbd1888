package daemon

// Egress wiring: the one outbound proxy, decided, audited and given its
// secrets by the security part (internal/security), refusing the daemon's
// own listeners.

import (
	"crypto/x509"
	"net"
	"net/netip"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/egress"
)

// egressHooks loosen the egress proxy for the package's tests, which set
// them through SetEgressTestHooks (egress_export_test.go). Benchmarks and
// other packages' tests use the egress_loopback_hosts and
// egress_upstream_ca_file settings instead.
type egressHooks struct {
	Resolver      egress.Resolver
	AllowLoopback bool
	// UpstreamRoots replaces the system roots for verifying upstreams.
	UpstreamRoots *x509.CertPool
}

// newEgressProxy builds the one outbound proxy: every request decided by
// the security part (the manifest or sandbox allowlist and the policy
// engine; model and tool registry calls to their own hosts), secrets
// substituted by its hook, every decision audited.
func (d *Daemon) newEgressProxy() (*egress.Proxy, error) {
	s := d.sec
	cfg := egress.Config{Decider: s, Secrets: s.SubstituteSecrets, Auditor: egress.AuditorFunc(s.AuditEgress),
		ClientCert: s.ClientCert, AllowPrivate: s.AllowPrivate, Sign: s.SignOutbound, // Web Bot Auth (security/botsign.go)
		// CONNECT from sandboxes is intercepted with leaves from the
		// platform CA, which sandboxes trust (sandboxnet.CABundle), so each
		// HTTPS request is decided, audited and gets its secrets.
		InterceptCA: s.CA().Certificate(), InterceptKey: s.CA().Signer(),
		Logger: d.log.With("component", "egress"), Metrics: d.reg,
		Resolver: d.egressHooks.Resolver, UnsafeAllowLoopback: d.egressHooks.AllowLoopback,
		UpstreamRoots: d.egressHooks.UpstreamRoots}
	// egress_loopback_hosts and egress_upstream_ca_file (validated by
	// config already).
	var err error
	if cfg.LoopbackHosts, err = config.ParseLoopbackHosts(d.cfg.EgressLoopbackHosts); err != nil {
		return nil, err
	}
	if len(cfg.LoopbackHosts) > 0 {
		d.log.Warn("egress reaches loopback for the stand-in hosts of egress_loopback_hosts; not for production", "hosts", d.cfg.EgressLoopbackHosts)
	}
	if cfg.UpstreamRoots == nil {
		if cfg.UpstreamRoots, err = d.cfg.EgressUpstreamRoots(); err != nil {
			return nil, err
		}
	}
	return egress.New(cfg)
}

// protectListeners makes the egress proxy refuse the daemon's own API
// listener and the embedded NATS server's, whatever grants and test hooks
// say. Called once the API listens (before that there is nothing to reach).
func (d *Daemon) protectListeners() {
	var own []netip.AddrPort
	for _, a := range []net.Addr{d.ln.Addr(), d.store.ListenAddr()} {
		if ta, ok := a.(*net.TCPAddr); ok && ta != nil {
			own = append(own, ta.AddrPort())
		}
	}
	d.proxy.Protect(own...)
}
