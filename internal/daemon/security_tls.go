package daemon

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"time"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
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
// one mandatory. It also writes the client files above.
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
	if err := d.sec.startAdminSVID(d.cfg.Data); err != nil {
		return nil, err
	}
	return cfg, nil
}

// startAdminSVID writes the admin's client certificate and key to dir and
// keeps them fresh until the daemon stops.
func (s *security) startAdminSVID(dir string) error {
	rot, err := s.ca.NewRotator(spiffeid.RequireFromString(s.admin.ID))
	if err != nil {
		return fmt.Errorf("admin certificate: %w", err)
	}
	write := func() error {
		svid, err := rot.GetX509SVID()
		if err != nil {
			return err
		}
		certPEM, keyPEM, err := svid.Marshal()
		if err != nil {
			return fmt.Errorf("admin certificate: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(dir, AdminKeyFile), keyPEM); err != nil {
			return err
		}
		return writeFileAtomic(filepath.Join(dir, AdminCertFile), certPEM)
	}
	if err := write(); err != nil {
		return err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			t := time.NewTimer(time.Until(rot.RotateAt()) + time.Second)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
				if err := write(); err != nil {
					s.log.Warn("rotate admin client certificate", "err", err)
				}
			}
		}
	}()
	return nil
}
