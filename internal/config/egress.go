package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// maxLoopbackHosts bounds egress_loopback_hosts.
const maxLoopbackHosts = 64

// loadEgressEnv reads AGENTCLOUD_EGRESS_LOOPBACK_HOSTS (comma-separated)
// and AGENTCLOUD_EGRESS_UPSTREAM_CA_FILE.
func (c *Config) loadEgressEnv(lookup func(string) (string, bool)) {
	if v, ok := lookup("AGENTCLOUD_EGRESS_LOOPBACK_HOSTS"); ok {
		c.EgressLoopbackHosts = splitList(v)
	}
	if v, ok := lookup("AGENTCLOUD_EGRESS_UPSTREAM_CA_FILE"); ok {
		c.EgressUpstreamCAFile = v
	}
	if v, ok := lookup("AGENTCLOUD_EGRESS_SIGNATURE_AGENT"); ok {
		c.EgressSignatureAgent = v
	}
}

// validateEgress checks egress_loopback_hosts (well-formed, and only on a
// node whose API listens on loopback) and egress_upstream_ca_file (a
// readable PEM file with at least one certificate).
func (c Config) validateEgress() Errors {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	if len(c.EgressLoopbackHosts) > 0 {
		if _, err := ParseLoopbackHosts(c.EgressLoopbackHosts); err != nil {
			var fe FieldError
			if errors.As(err, &fe) {
				errs = append(errs, fe)
			} else {
				add("egress_loopback_hosts", strings.Join(c.EgressLoopbackHosts, ","), err.Error())
			}
		}
		if !loopbackListen(c.Listen) {
			add("egress_loopback_hosts", strings.Join(c.EgressLoopbackHosts, ","),
				"lets agents reach services on this machine, so it needs listen on a loopback address (127.0.0.1:PORT or [::1]:PORT), not "+c.Listen)
		}
	}
	if c.EgressUpstreamCAFile != "" {
		b, err := os.ReadFile(c.EgressUpstreamCAFile)
		switch {
		case err != nil:
			add("egress_upstream_ca_file", c.EgressUpstreamCAFile, "cannot be read: "+err.Error())
		case !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----"):
			add("egress_upstream_ca_file", c.EgressUpstreamCAFile, "want a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)")
		}
	}
	if o := c.EgressSignatureAgent; o != "" {
		if detail := checkOrigin(o); detail != "" {
			add("egress_signature_agent", o, detail)
		}
	}
	return errs
}

// checkOrigin says what is wrong with o as a Signature-Agent origin
// ("" if nothing): https, a host, an optional port, no path, query,
// fragment or userinfo.
func checkOrigin(o string) string {
	const want = "want an https origin such as https://agents.example.com (no path, query or userinfo) that serves " +
		"/.well-known/http-message-signatures-directory from this node"
	u, err := url.Parse(o)
	if len(o) > 512 || err != nil || !strings.HasPrefix(o, "https://") || u.Opaque != "" || u.User != nil || u.RawQuery != "" ||
		u.ForceQuery || u.Fragment != "" || (u.Path != "" && u.Path != "/") || u.Hostname() == "" {
		return want
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return want
		}
	}
	if h := strings.ToLower(u.Hostname()); strings.Contains(h, "*") || !ValidTLSName(h) {
		return want
	}
	return ""
}

// loopbackListen reports whether addr (host:port) listens on loopback only.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// ParseLoopbackHosts reads egress_loopback_hosts entries, "NAME" or
// "NAME=ADDR", into the names the egress proxy resolves to loopback. NAME
// is a DNS name (a-z 0-9 - labels separated by dots; upper case is
// lowered), not an IP address, not localhost; ADDR is a loopback address,
// 127.0.0.1 when omitted. A name given twice is an error.
func ParseLoopbackHosts(entries []string) (map[string]netip.Addr, error) {
	if len(entries) > maxLoopbackHosts {
		return nil, FieldError{"egress_loopback_hosts", strings.Join(entries[:3], ",") + ",...", fmt.Sprintf("want at most %d entries", maxLoopbackHosts)}
	}
	out := make(map[string]netip.Addr, len(entries))
	for _, e := range entries {
		bad := func(detail string) error { return FieldError{"egress_loopback_hosts", e, detail} }
		name, addr, hasAddr := strings.Cut(strings.TrimSpace(e), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		a := netip.MustParseAddr("127.0.0.1")
		if hasAddr {
			var err error
			if a, err = netip.ParseAddr(strings.TrimSpace(addr)); err != nil || !a.Unmap().IsLoopback() || a.Zone() != "" {
				return nil, bad("want NAME=ADDR with ADDR a loopback address (127.0.0.0/8 or ::1)")
			}
			a = a.Unmap()
		}
		if _, err := netip.ParseAddr(name); err == nil || strings.HasPrefix(name, "*.") || !ValidTLSName(name) {
			return nil, bad("want a DNS name (a-z 0-9 - labels separated by dots), optionally =ADDR")
		}
		if name == "localhost" || strings.HasSuffix(name, ".localhost") {
			return nil, bad("localhost is loopback already and stays refused; name a stand-in host such as bench.test")
		}
		if _, dup := out[name]; dup {
			return nil, bad("name given twice")
		}
		out[name] = a
	}
	return out, nil
}

// EgressUpstreamRoots are the system roots plus the certificates of
// egress_upstream_ca_file (nil without one).
func (c Config) EgressUpstreamRoots() (*x509.CertPool, error) {
	f := c.EgressUpstreamCAFile
	if f == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f)
	if err != nil {
		return nil, fmt.Errorf("egress_upstream_ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("egress_upstream_ca_file %s: no PEM certificate in it", f)
	}
	return pool, nil
}
