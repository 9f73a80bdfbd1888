package daemon

import (
	"crypto/tls"
	"fmt"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/identity"
)

// caDir is where the CA keeps its root and keys.
func (d *Daemon) caDir() string {
	if d.cfg.CADir != "" {
		return d.cfg.CADir
	}
	return filepath.Join(d.cfg.Data, "ca")
}

// serverTLS returns the API's TLS config with --tls (nil without): the node
// presents its X.509-SVID (spiffe://TD/node/NODE, rotated at half-life) and
// accepts client SVIDs of the trust domain; --require-client-cert makes
// one mandatory.
func (d *Daemon) serverTLS() (*tls.Config, error) {
	if !d.cfg.TLS {
		return nil, nil
	}
	id, err := identity.NewID(d.sec.td, identity.KindNode, d.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	rot, err := d.sec.ca.NewRotator(id, "localhost", d.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	cfg := d.sec.ca.ServerTLSConfig(rot)
	if d.cfg.RequireClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert // VerifyPeerCertificate checks it is an SVID
	}
	return cfg, nil
}
