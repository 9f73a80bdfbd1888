package daemon

import (
	"crypto/tls"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/security"
)

// Files a TLS daemon writes in its data dir for local clients (the CLI finds
// them with --data, as it finds api.addr and admin.token).
const (
	// URLFile holds the API's URL ("https://127.0.0.1:PORT") while it serves
	// TLS; written just before AddrFile and removed with it.
	URLFile = "api.url"
	// AdminCertFile and AdminKeyFile are an X.509-SVID for the bootstrap
	// admin (spiffe://TD/admin/admin), the mTLS counterpart of admin.token,
	// so a --require-client-cert daemon can be administered locally. The
	// key is 0600; both are rewritten at the certificate's half-life.
	AdminCertFile = "admin.crt"
	AdminKeyFile  = "admin.key"
)

// serverTLS returns the API's TLS config with --tls (nil without). The node
// presents its X.509-SVID (spiffe://TD/node/NODE, rotated at half-life),
// whose DNS and IP SANs cover the names clients dial (security.ServerNames), or, with
// tls_cert/tls_key, the operator's own certificate. Either way it accepts
// client SVIDs of the trust domain; --require-client-cert makes one
// mandatory. It also writes the admin's client certificate.
func (d *Daemon) serverTLS() (*tls.Config, error) {
	if !d.cfg.TLS {
		return nil, nil
	}
	cfg, err := d.sec.NodeTLS(d.cfg.NodeID, security.ServerNames(d.ln.Addr(), d.cfg.NodeID, d.cfg.TLSNames)...)
	if err != nil {
		return nil, err
	}
	if d.cfg.TLSCert != "" {
		own, err := security.LoadCertFile(d.cfg.TLSCert, d.cfg.TLSKey, d.log)
		if err != nil {
			return nil, err
		}
		cfg.GetCertificate = own.GetCertificate
	}
	if d.cfg.RequireClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert // VerifyPeerCertificate checks it is an SVID
	}
	if err := d.sec.StartAdminSVID(filepath.Join(d.cfg.Data, AdminCertFile), filepath.Join(d.cfg.Data, AdminKeyFile)); err != nil {
		return nil, err
	}
	return cfg, nil
}

// localAddr is the address a client on this machine dials: the listen
// address, with an unspecified host (0.0.0.0, ::) replaced by 127.0.0.1,
// which the node certificate then covers.
func (d *Daemon) localAddr() string {
	host, port, err := net.SplitHostPort(d.ln.Addr().String())
	if err != nil {
		return d.ln.Addr().String()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return d.ln.Addr().String()
}
