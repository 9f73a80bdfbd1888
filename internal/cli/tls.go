package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// TLS for the CLI's connection to a `serve --tls` daemon.
//
// The CA comes from --ca-cert (AGENTCLOUD_CA_CERT), else the local daemon's
// <data>/ca/ca.crt, else <user config dir>/agentcloud/ca.crt. A client
// certificate comes from --client-cert/--client-key (AGENTCLOUD_CLIENT_CERT,
// AGENTCLOUD_CLIENT_KEY), else, when the CA is the local daemon's, its
// admin certificate <data>/admin.crt, else <user config
// dir>/agentcloud/client.{crt,key}.
//
// A CA whose certificate names a SPIFFE trust domain (the platform CA does)
// is checked the SPIFFE way: the server must present an X.509-SVID of that
// trust domain signed by the CA, whatever host name was dialled (a local
// daemon is reached as 127.0.0.1). Any other CA is checked as a web PKI root
// with the usual host name check.

// tlsFiles are the files the TLS settings were taken from.
type tlsFiles struct {
	ca, cert, key string
	localCA       bool // ca is the --data daemon's own
}

// userConfigFile is <user config dir>/agentcloud/name, "" if it does not exist.
func userConfigFile(name string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(dir, "agentcloud", name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// resolveTLS picks the CA and client certificate files from flags, the data
// dir and the user config dir.
func (g *globals) resolveTLS() (tlsFiles, error) {
	f := tlsFiles{ca: g.caCert, cert: g.clientCert, key: g.clientKey}
	if (f.cert == "") != (f.key == "") {
		return f, errors.New("--client-cert and --client-key go together: pass both (agentcloud identity issue writes a pair)")
	}
	if f.ca == "" {
		if p := filepath.Join(g.data, "ca", "ca.crt"); exists(p) {
			f.ca, f.localCA = p, true
		} else {
			f.ca = userConfigFile("ca.crt")
		}
	}
	if f.cert == "" {
		crt, key := filepath.Join(g.data, daemon.AdminCertFile), filepath.Join(g.data, daemon.AdminKeyFile)
		if f.localCA && exists(crt) && exists(key) {
			f.cert, f.key = crt, key
		} else if crt, key := userConfigFile("client.crt"), userConfigFile("client.key"); crt != "" && key != "" {
			f.cert, f.key = crt, key
		}
	}
	return f, nil
}

// tlsConfig builds the client TLS config for files.
func tlsConfig(f tlsFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		roots, td, err := loadCA(f.ca)
		if err != nil {
			return nil, err
		}
		if td.IsZero() {
			cfg.RootCAs = x509.NewCertPool()
			for _, c := range roots {
				cfg.RootCAs.AddCert(c)
			}
		} else {
			// Verified below against the platform CA as a SPIFFE
			// X.509-SVID, instead of by host name.
			cfg.InsecureSkipVerify = true
			cfg.VerifyPeerCertificate = tlsconfig.VerifyPeerCertificate(
				x509bundle.FromX509Authorities(td, roots), tlsconfig.AuthorizeMemberOf(td))
		}
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("client certificate --client-cert %s / --client-key %s: %w", f.cert, f.key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// loadCA reads the PEM certificates in path and the SPIFFE trust domain the
// first of them names (zero if none does).
func loadCA(path string) ([]*x509.Certificate, spiffeid.TrustDomain, error) {
	var td spiffeid.TrustDomain
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, td, fmt.Errorf("--ca-cert: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, td, fmt.Errorf("--ca-cert %s: %w", path, err)
		}
		certs = append(certs, c)
		for _, u := range c.URIs {
			if t, err := spiffeid.TrustDomainFromURI(u); err == nil && td.IsZero() {
				td = t
			}
		}
	}
	if len(certs) == 0 {
		return nil, td, fmt.Errorf("--ca-cert %s: no PEM CERTIFICATE blocks (want the platform CA, e.g. <data>/ca/ca.crt or the bundle.crt from agentcloud identity issue)", path)
	}
	return certs, td, nil
}

// httpClient returns the HTTP client for server: plain for http://, with
// the TLS settings above for https://.
func (g *globals) httpClient(server string) (*http.Client, error) {
	f, err := g.resolveTLS()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(server, "https://") {
		if g.clientCert != "" || g.caCert != "" {
			return nil, fmt.Errorf("--ca-cert and --client-cert need an https:// --server (got %q)", server)
		}
		return nil, nil
	}
	cfg, err := tlsConfig(f)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	if len(cfg.Certificates) > 0 {
		return &http.Client{Transport: tr}, nil
	}
	// Without a certificate, note when the server asks for one: a server
	// that requires it then drops the connection, and the error alone
	// (often just "connection reset") would not say why.
	nc := &noCertTransport{tr: tr}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		nc.asked.Store(true)
		return &tls.Certificate{}, nil
	}
	return &http.Client{Transport: nc}, nil
}

// errClientCertRequired marks a failure after the server asked for a client
// certificate the CLI did not have.
var errClientCertRequired = errors.New("the connection failed after the daemon asked for a client certificate, and none was given")

type noCertTransport struct {
	tr    *http.Transport
	asked atomic.Bool
}

func (t *noCertTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.tr.RoundTrip(r)
	if err != nil && t.asked.Load() {
		return nil, fmt.Errorf("%w: %w", errClientCertRequired, err)
	}
	return resp, err
}

// tlsHint advises on a TLS failure, "" when err is not one.
func tlsHint(err error) string {
	s := err.Error()
	switch {
	case errors.Is(err, errClientCertRequired), strings.Contains(s, "certificate required"):
		return "the daemon requires a client certificate: pass --client-cert and --client-key (agentcloud identity issue writes them; a local daemon's admin pair is <data>/admin.crt and admin.key)"
	case strings.Contains(s, "x509:"), strings.Contains(s, "x509svid:"), strings.Contains(s, "could not get leaf SPIFFE ID"):
		return "the server's certificate is not trusted: pass --ca-cert with the platform CA (<data>/ca/ca.crt, or the bundle.crt from agentcloud identity issue); a daemon serving its own certificate (serve --tls-cert) needs --server https://NAME:PORT with a name that certificate covers, and --ca-cert with its CA unless the system trusts it"
	case strings.Contains(s, "server gave HTTP response to HTTPS client"):
		return "the daemon does not serve TLS: use an http:// --server"
	case strings.Contains(s, "malformed HTTP response"), strings.Contains(s, "HTTP request to an HTTPS server"):
		return "the daemon serves TLS: use an https:// --server (a local daemon writes its URL to <data>/" + daemon.URLFile + ")"
	}
	return ""
}
