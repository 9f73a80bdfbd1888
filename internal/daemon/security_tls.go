package daemon

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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

// serverTLS returns the API's TLS config with --tls (nil without). The node
// presents its X.509-SVID (spiffe://TD/node/NODE, rotated at half-life),
// whose DNS and IP SANs cover the names clients dial (serverNames), or, with
// tls_cert/tls_key, the operator's own certificate. Either way it accepts
// client SVIDs of the trust domain; --require-client-cert makes one
// mandatory. It also writes the admin's client certificate.
func (d *Daemon) serverTLS() (*tls.Config, error) {
	if !d.cfg.TLS {
		return nil, nil
	}
	id, err := identity.NewID(d.sec.td, identity.KindNode, d.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	rot, err := d.sec.ca.NewRotator(id, d.serverNames()...)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	cfg := d.sec.ca.ServerTLSConfig(rot)
	if d.cfg.TLSCert != "" {
		own, err := newCertFile(d.cfg.TLSCert, d.cfg.TLSKey, d.log)
		if err != nil {
			return nil, err
		}
		cfg.GetCertificate = own.GetCertificate
	}
	if d.cfg.RequireClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert // VerifyPeerCertificate checks it is an SVID
	}
	if err := d.sec.startAdminSVID(d.cfg.Data); err != nil {
		return nil, err
	}
	return cfg, nil
}

// serverNames are the SANs of the node certificate: localhost and the node
// ID; the listen address, or for an unspecified one (0.0.0.0, ::) every
// address of the machine's interfaces and its host name; then tls_names.
// Interface addresses are read once at start.
func (d *Daemon) serverNames() []string {
	names := []string{"localhost", d.cfg.NodeID}
	host, _, _ := net.SplitHostPort(d.ln.Addr().String())
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			if addrs, err := net.InterfaceAddrs(); err == nil {
				for _, a := range addrs {
					if p, err := netip.ParsePrefix(a.String()); err == nil {
						names = append(names, p.Addr().WithZone("").String())
					}
				}
			}
			if h, err := os.Hostname(); err == nil && h != "" {
				names = append(names, strings.ToLower(h))
			}
		} else {
			names = append(names, ip.WithZone("").String())
		}
		if ip.IsLoopback() || ip.IsUnspecified() {
			names = append(names, "127.0.0.1", "::1")
		}
	}
	names = append(names, d.cfg.TLSNames...)
	slices.Sort(names)
	return slices.Compact(names)
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

// certFile serves an operator's certificate and key from PEM files and
// re-reads them when either file changes (a renewal by cert-manager, certbot
// or hand), keeping the last good pair when the new one does not load.
type certFile struct {
	certPath, keyPath string
	log               *slog.Logger

	mu    sync.Mutex // protects the fields below
	stamp string     // modification times and sizes of the two files
	cert  *tls.Certificate
}

func newCertFile(certPath, keyPath string, log *slog.Logger) (*certFile, error) {
	c := &certFile{certPath: certPath, keyPath: keyPath, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certFile) fileStamp() string {
	var b strings.Builder
	for _, p := range []string{c.certPath, c.keyPath} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return b.String()
}

// load reads the pair; the caller holds mu (or owns c).
func (c *certFile) load() error {
	stamp := c.fileStamp()
	pair, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return fmt.Errorf("tls_cert %s / tls_key %s: %w", c.certPath, c.keyPath, err)
	}
	c.cert, c.stamp = &pair, stamp
	return nil
}

// GetCertificate is the tls.Config hook: the current pair, re-read first
// if a file changed since it was loaded.
func (c *certFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp := c.fileStamp(); stamp != c.stamp {
		if err := c.load(); err != nil {
			c.stamp = stamp // do not retry until the files change again
			c.log.Warn("reload TLS certificate; serving the previous one", "err", err)
		} else {
			c.log.Info("reloaded TLS certificate", "cert", c.certPath)
		}
	}
	return c.cert, nil
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
