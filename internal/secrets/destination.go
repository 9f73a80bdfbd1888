package secrets

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
)

// ErrSchemeNotAllowed is returned (wrapped, together with
// ErrHostNotAllowed) when a secret would go over plain HTTP and its
// definition does not allow that.
var ErrSchemeNotAllowed = errors.New("secret not allowed over plain http")

// Destination is where a request carrying secrets goes: the URL's scheme,
// host and port as the egress proxy will dial them.
type Destination struct {
	Scheme string // "https" or "http"
	Host   string // lowercased, no port, no brackets
	Port   int    // 1-65535; the scheme's default when the URL has none
}

// String returns scheme://host:port.
func (d Destination) String() string {
	return d.Scheme + "://" + d.Host + ":" + strconv.Itoa(d.Port)
}

// DefaultPort is the port of a scheme when a URL names none.
func DefaultPort(scheme string) int {
	if scheme == "http" {
		return 80
	}
	return 443
}

// DestinationOf reads the destination of an absolute http(s) URL.
func DestinationOf(u *url.URL) (Destination, error) {
	if u == nil {
		return Destination{}, errors.New("destination: no url")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return Destination{}, fmt.Errorf("destination %s: scheme %q is not http or https", u.Redacted(), u.Scheme)
	}
	d := Destination{Scheme: scheme, Host: strings.ToLower(u.Hostname()), Port: DefaultPort(scheme)}
	if d.Host == "" {
		return Destination{}, fmt.Errorf("destination %s: no host", u.Redacted())
	}
	if ps := u.Port(); ps != "" {
		n, err := parsePort(ps)
		if err != nil {
			return Destination{}, fmt.Errorf("destination %s: %w", u.Redacted(), err)
		}
		d.Port = n
	}
	return d, nil
}

// AllowHost is one parsed allow_hosts entry, in the one host-pattern
// syntax of internal/egress/hostpattern ("[*.]name[:port]"). What differs
// for secrets is what an entry without a port means: the scheme's default
// port only (443 for https, 80 for http when the secret allows http), not
// both.
type AllowHost struct{ hostpattern.Pattern }

// ParseAllowHost parses an allow_hosts entry: "api.example.com",
// "*.example.com", "api.example.com:8443" or "*.example.com:8443".
func ParseAllowHost(entry string) (AllowHost, error) {
	p, err := hostpattern.Parse(strings.ToLower(entry)) // names are case-insensitive
	if err != nil {
		return AllowHost{}, fmt.Errorf("allowed host %.64q: %w", entry, err)
	}
	return AllowHost{p}, nil
}

// parsePort reads a decimal port from 1 to 65535 without sign or leading
// zeros.
func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 || s[0] == '0' || s[0] == '+' {
		return 0, fmt.Errorf("port %q: want a number from 1 to 65535", s)
	}
	return n, nil
}

// Matches reports whether the entry allows host and port for scheme.
func (a AllowHost) Matches(d Destination) bool {
	if !a.MatchHost(d.Host) {
		return false
	}
	if a.Port != 0 {
		return d.Port == a.Port
	}
	return d.Port == DefaultPort(d.Scheme)
}

// CheckDefinition validates a secret's metadata: its name and every
// allow_hosts entry.
func CheckDefinition(s Secret) error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("secret %q: %w", s.Name, ErrInvalidName)
	}
	for _, e := range s.AllowHosts {
		if _, err := ParseAllowHost(e); err != nil {
			return fmt.Errorf("secret %s: %w", s.Name, err)
		}
	}
	return nil
}

// Allows reports (as nil) whether the secret may be sent to d: over https,
// or over http only when AllowHTTP is set; to a host one of AllowHosts
// matches, on that entry's port or, for an entry without one, the
// scheme's default port. A refusal wraps ErrHostNotAllowed (and
// ErrSchemeNotAllowed for plain http) and says how to allow it.
func (s Secret) Allows(d Destination) error {
	if d.Scheme != "https" && !(d.Scheme == "http" && s.AllowHTTP) {
		return fmt.Errorf("secret %s for %s: it may be sent only over https (set allow_http to allow plain http): %w: %w",
			s.Name, d, ErrHostNotAllowed, ErrSchemeNotAllowed)
	}
	hostOK := false
	for _, e := range s.AllowHosts {
		a, err := ParseAllowHost(e)
		if err != nil {
			continue // stored before validation tightened: allows nothing
		}
		if a.Matches(d) {
			return nil
		}
		hostOK = hostOK || a.MatchHost(d.Host)
	}
	if hostOK {
		return fmt.Errorf("secret %s for %s: port %d is not allowed (add %s:%d to allow_hosts): %w",
			s.Name, d, d.Port, d.Host, d.Port, ErrHostNotAllowed)
	}
	return fmt.Errorf("secret %s for host %s: %w", s.Name, d.Host, ErrHostNotAllowed)
}
