package config

import (
	"net/netip"
	"strings"
)

// validateTLS checks the server certificate settings: tls_cert and tls_key
// together, both and tls_names only with tls, tls_names only for the
// platform-issued certificate, and every name a DNS name or an IP address.
func (c Config) validateTLS() Errors {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	if (c.TLSCert == "") != (c.TLSKey == "") {
		add("tls_key", c.TLSKey, "tls_cert and tls_key go together: give both PEM files (certificate chain and its private key)")
	}
	if !c.TLS {
		if c.TLSCert != "" {
			add("tls_cert", c.TLSCert, "needs tls: set tls (--tls) to serve the API over TLS")
		}
		if len(c.TLSNames) > 0 {
			add("tls_names", strings.Join(c.TLSNames, ","), "needs tls: set tls (--tls) to serve the API over TLS")
		}
		if c.HTTP3 {
			add("http3", "true", "needs tls: HTTP/3 runs over QUIC, which is always TLS; set tls (--tls) as well, or drop http3")
		}
	}
	if c.TLSCert != "" && len(c.TLSNames) > 0 {
		add("tls_names", strings.Join(c.TLSNames, ","), "applies to the node certificate the platform CA issues; with tls_cert the names are the ones in that certificate")
	}
	if len(c.TLSNames) > 64 {
		add("tls_names", strings.Join(c.TLSNames[:3], ",")+",...", "want at most 64 names")
		return errs
	}
	for _, n := range c.TLSNames {
		if !ValidTLSName(n) {
			add("tls_names", n, "want a DNS name (a-z 0-9 - labels separated by dots, an optional leading *.) or an IP address")
		}
	}
	return errs
}

// ValidTLSName reports whether name can be a certificate's subject
// alternative name: an IP address (without zone), or a DNS name of at most
// 253 bytes whose dot-separated labels are 1-63 of a-z 0-9 - (not first or
// last), optionally after a leading "*." wildcard label.
func ValidTLSName(name string) bool {
	if a, err := netip.ParseAddr(name); err == nil {
		return a.Zone() == ""
	}
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, ch := range []byte(label) {
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

// splitList splits a comma-separated environment value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
