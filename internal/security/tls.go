package security

// TLS (tls.go): the node's server certificate, the bootstrap admin's
// client certificate kept fresh on disk, and an operator's certificate
// served from files that may be renewed under a running daemon. Which
// names a listener needs and where it listens are the daemon's business.

import (
	"crypto/rand"
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

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// NodeTLS returns a server TLS configuration presenting the X.509-SVID of
// node (spiffe://TD/node/NODE, rotated at half-life) with names as its DNS
// and IP SANs, that accepts client SVIDs of the trust domain.
func (s *Security) NodeTLS(node string, names ...string) (*tls.Config, error) {
	id, err := identity.NewID(s.td, identity.KindNode, node)
	if err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	rot, err := s.ca.NewRotator(id, names...)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	return s.ca.ServerTLSConfig(rot), nil
}

// StartAdminSVID writes an X.509-SVID of the bootstrap admin to certPath
// and keyPath (0600) and rewrites them at the certificate's half-life
// until Close.
func (s *Security) StartAdminSVID(certPath, keyPath string) error {
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
		if err := atomicfile.Write(keyPath, keyPEM, 0o600); err != nil {
			return err
		}
		return atomicfile.Write(certPath, certPEM, 0o600)
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

// CertFile serves an operator's certificate and key from PEM files and
// re-reads them when either file changes (a renewal by cert-manager, certbot
// or hand), keeping the last good pair when the new one does not load.
type CertFile struct {
	certPath, keyPath string
	log               *slog.Logger

	mu    sync.Mutex // protects the fields below
	stamp string     // modification times and sizes of the two files
	cert  *tls.Certificate
}

// LoadCertFile loads the pair; an error names both files.
func LoadCertFile(certPath, keyPath string, log *slog.Logger) (*CertFile, error) {
	c := &CertFile{certPath: certPath, keyPath: keyPath, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CertFile) fileStamp() string {
	var b strings.Builder
	for _, p := range []string{c.certPath, c.keyPath} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		}
	}
	return b.String()
}

// load reads the pair; the caller holds mu (or owns c).
func (c *CertFile) load() error {
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
func (c *CertFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
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

// ServerNames are the SANs of a node certificate: localhost and the node
// ID; the listen address, or for an unspecified one (0.0.0.0, ::) every
// address of the machine's interfaces and its host name; then extra (tls_names).
// Interface addresses are read once at start.
func ServerNames(listen net.Addr, node string, extra []string) []string {
	names := []string{"localhost", node}
	host, _, _ := net.SplitHostPort(listen.String())
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
	names = append(names, extra...)
	slices.Sort(names)
	return slices.Compact(names)
}

// NodeKey is the node's HMAC key for what it signs for itself (envd
// access tokens, public port URLs): <dataDir>/node.key, 32 random bytes
// (0600), made on first use.
func NodeKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "node.key")
	b, err := atomicfile.LoadOrCreate(path, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
	if err == nil && len(b) != 32 {
		err = fmt.Errorf("%s: %d bytes, want 32", path, len(b))
	}
	return b, err
}
