package daemon

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/egress"
)

// egressSettings applies egress_loopback_hosts and egress_upstream_ca_file
// to the proxy's configuration (config validated both already).
func (d *Daemon) egressSettings(cfg *egress.Config) error {
	if len(d.cfg.EgressLoopbackHosts) > 0 {
		hosts, err := config.ParseLoopbackHosts(d.cfg.EgressLoopbackHosts)
		if err != nil {
			return err
		}
		cfg.LoopbackHosts = hosts
		d.log.Warn("egress reaches loopback for the stand-in hosts of egress_loopback_hosts; not for production", "hosts", d.cfg.EgressLoopbackHosts)
	}
	if f := d.cfg.EgressUpstreamCAFile; f != "" && cfg.UpstreamRoots == nil {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("egress_upstream_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("egress_upstream_ca_file %s: no PEM certificate in it", f)
		}
		cfg.UpstreamRoots = pool
	}
	return nil
}
