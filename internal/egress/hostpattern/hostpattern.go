// Package hostpattern is the one meaning of a host allowlist entry. Every
// list that outbound destinations are matched against uses it: agent
// manifests' and sandboxes' egress, model providers and tool upstreams
// (one exact pattern built from their URL), and, host-only, the hosts a
// secret may be sent to and the trusted and private host lists.
//
// A pattern is a host name ("api.example.com"), a wildcard
// ("*.example.com": any name below example.com, not example.com itself) or
// an IPv4 address, optionally followed by ":port". Without a port a pattern
// allows the web's default ports, 80 and 443 (DefaultPorts); with one it
// allows exactly that port. Host names compare case-insensitively and
// without a trailing dot. Parse accepts exactly what Match can match, and
// says what is wrong and how to fix it when it does not.
//
// The package only parses and matches; it does not resolve names or judge
// addresses (internal/egress refuses private and metadata destinations
// after resolution, whatever a pattern says).
package hostpattern

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPorts are the ports a pattern without a port allows.
var DefaultPorts = [...]int{80, 443}

// MaxLen bounds a pattern: a 253-byte name, "*." and ":65535".
const MaxLen = 2 + 253 + 6

// Pattern is a parsed allowlist entry.
type Pattern struct {
	// Name is the lowercased host name or IPv4 address; for a wildcard,
	// the domain after "*.".
	Name string
	// Wildcard is set for "*.Name": names strictly below Name.
	Wildcard bool
	// Port is the one port allowed; 0 means DefaultPorts.
	Port int
}

// String is the pattern as written: "[*.]name[:port]".
func (p Pattern) String() string {
	s := p.Name
	if p.Wildcard {
		s = "*." + s
	}
	if p.Port != 0 {
		s += ":" + strconv.Itoa(p.Port)
	}
	return s
}

// MatchHost reports whether host matches the pattern's name part, whatever
// the port. host is a bare host name or address (no port, no brackets);
// case and a trailing dot are ignored.
func (p Pattern) MatchHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || p.Name == "" {
		return false
	}
	if p.Wildcard {
		return len(host) > len(p.Name)+1 && strings.HasSuffix(host, p.Name) && host[len(host)-len(p.Name)-1] == '.'
	}
	return host == p.Name
}

// MatchPort reports whether port is allowed: the pattern's port, or one of
// DefaultPorts for a pattern without one.
func (p Pattern) MatchPort(port int) bool {
	if p.Port != 0 {
		return port == p.Port
	}
	for _, d := range DefaultPorts {
		if port == d {
			return true
		}
	}
	return false
}

// Match reports whether a request to host:port is allowed by the pattern.
func (p Pattern) Match(host string, port int) bool {
	return p.MatchPort(port) && p.MatchHost(host)
}

// Error says why a pattern was refused and how to fix it.
type Error struct {
	Pattern string
	// Problem is a lowercase phrase that quotes the pattern.
	Problem string
	// Fix is a lowercase imperative phrase.
	Fix string
}

func (e *Error) Error() string { return e.Problem + "; " + e.Fix }

func refuse(s, fix, problem string, args ...any) (Pattern, error) {
	return Pattern{}, &Error{Pattern: s, Problem: fmt.Sprintf(problem, args...), Fix: fix}
}

// Parse validates an allowlist entry with an optional port. Upper-case
// letters are refused (with the lower-case spelling as the fix) so that a
// list reads as it matches.
func Parse(s string) (Pattern, error) { return parse(s, true) }

// ParseHost validates an entry of a host-only list (a secret's allowed
// hosts, trusted and private hosts), where a port has no meaning.
func ParseHost(s string) (Pattern, error) { return parse(s, false) }

func parse(s string, ports bool) (Pattern, error) {
	if s == "" {
		return refuse(s, `remove it, or write a host such as "api.example.com"`, "is empty")
	}
	if len(s) > MaxLen {
		return refuse(s, "use a valid DNS name", "pattern is %d characters, above the maximum %d", len(s), MaxLen)
	}
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return refuse(s, fmt.Sprintf("write the host only: %q", u.Host), "%q is a URL, not a host pattern", s)
		}
		return refuse(s, `write the host only, such as "api.example.com"`, "%q is a URL, not a host pattern", s)
	}
	if i := strings.IndexAny(s, "/?#"); i >= 0 {
		return refuse(s, fmt.Sprintf("write %q", s[:i]), "%q has a path; egress is allowed per host", s)
	}
	if strings.ContainsAny(s, "[]") || strings.Count(s, ":") > 1 {
		return refuse(s, "use a host name", "%q: IP literals other than IPv4 are not supported", s)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '@' || r == ',' }) {
		return refuse(s, `use letters, digits, '-' and '.', such as "api.example.com"`, "%q has a space, a control character, '@', ',' or a non-ASCII character", s)
	}
	host, portStr, hasPort := strings.Cut(s, ":")
	var p Pattern
	if hasPort {
		if !ports {
			return refuse(s, fmt.Sprintf("write %q: this list is matched per host, on any port", host), "%q has a port", s)
		}
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 1 || n > 65535 || portStr[0] == '0' || portStr[0] == '+' {
			return refuse(s, "use a port from 1 to 65535, or leave it out to allow ports 80 and 443", "%q has an invalid port %q", s, portStr)
		}
		p.Port = n
	}
	if l := strings.ToLower(host); l != host {
		return refuse(s, fmt.Sprintf("write %q", strings.ToLower(s)), "%q has upper-case letters", s)
	}
	if host == "*" {
		return refuse(s, `list the hosts needed, such as "*.example.com"`, "\"*\" would allow every host")
	}
	name, wild := strings.CutPrefix(host, "*.")
	if strings.HasSuffix(name, ".") {
		return refuse(s, fmt.Sprintf("write %q", strings.Replace(s, host, strings.TrimSuffix(host, "."), 1)), "%q ends with a dot", s)
	}
	if strings.Contains(name, "*") {
		return refuse(s, `write a pattern such as "*.example.com"`, "%q: '*' may only be the whole first label", s)
	}
	if len(name) > 253 {
		return refuse(s, "use a valid DNS name", "host is %d characters, above the maximum 253", len(name))
	}
	if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
		if wild {
			return refuse(s, fmt.Sprintf("write %q", strings.TrimPrefix(s, "*.")), "%q: an IP address cannot have a wildcard", s)
		}
		p.Name = name
		return p, nil
	}
	labels := strings.Split(name, ".")
	if wild && len(labels) < 2 {
		return refuse(s, `name the domain, such as "*.example.com"`, "%q would allow a whole top-level domain", s)
	}
	for _, l := range labels {
		if !validLabel(l) {
			return refuse(s, `use labels of 1 to 63 letters, digits and '-' separated by dots, such as "api.example.com"`, "%q is not a valid host name", s)
		}
	}
	if numeric(labels[len(labels)-1]) {
		return refuse(s, "write an IPv4 address as four decimal numbers, such as 192.0.2.10, or use a host name",
			"%q looks like a numeric address but is not a dotted-decimal IPv4 address", s)
	}
	p.Name, p.Wildcard = name, wild
	return p, nil
}

// validLabel: 1 to 63 of a-z 0-9 '-', not starting or ending with '-'.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// numeric reports whether a last label reads as a number (decimal, or hex
// with 0x): no top-level domain is numeric, and resolvers read such names
// as IPv4 addresses ("0x7f000001", "127.1").
func numeric(l string) bool {
	if h, ok := strings.CutPrefix(l, "0x"); ok {
		_, err := strconv.ParseUint(h, 16, 64)
		return err == nil || h == ""
	}
	for i := 0; i < len(l); i++ {
		if l[i] < '0' || l[i] > '9' {
			return false
		}
	}
	return true
}

// lenient parses a stored pattern for matching: lower-cased first, so a
// list written before validation tightened still matches as it did; a
// pattern that does not parse matches nothing.
func lenient(s string, ports bool) (Pattern, bool) {
	p, err := parse(strings.ToLower(s), ports)
	return p, err == nil
}

// Allowed reports whether a request to host:port matches any of patterns.
// Patterns that do not parse match nothing.
func Allowed(patterns []string, host string, port int) bool {
	for _, s := range patterns {
		if p, ok := lenient(s, true); ok && p.Match(host, port) {
			return true
		}
	}
	return false
}

// HostAllowed reports whether host matches any of a host-only list's
// patterns (a secret's allowed hosts, trusted or private hosts). Ports do
// not matter there; a pattern written with a port matches nothing.
func HostAllowed(patterns []string, host string) bool {
	for _, s := range patterns {
		if p, ok := lenient(s, false); ok && p.MatchHost(host) {
			return true
		}
	}
	return false
}

// ForURL is the exact pattern for a URL's host and port (the scheme's
// default port when it names none): "api.example.com:443". It is how a
// model provider's or tool upstream's URL becomes its allowlist. It fails
// for a URL whose host is not a valid pattern name (an IPv6 literal).
func ForURL(u *url.URL) (string, error) {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		default:
			return "", fmt.Errorf("url %q: no port and scheme %q has no default", u.Redacted(), u.Scheme)
		}
	}
	s := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".") + ":" + port
	if _, err := Parse(s); err != nil {
		return "", fmt.Errorf("url %q: %w", u.Redacted(), err)
	}
	return s, nil
}
