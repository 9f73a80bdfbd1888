package secrets

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
)

// placeholderRE matches {{secret:NAME}}.
var placeholderRE = regexp.MustCompile(`\{\{secret:([A-Za-z0-9_.-]{1,128})\}\}`)

// ValidatePattern checks a host pattern of a secret's allowed hosts: a DNS
// name, optionally with a leading "*." wildcard label, no port (the one
// parser of host patterns is internal/egress/hostpattern).
func ValidatePattern(p string) error {
	if _, err := hostpattern.ParseHost(strings.ToLower(p)); err != nil {
		return fmt.Errorf("host pattern %q: want name or *.name: %w", p, err)
	}
	return nil
}

// HostMatch reports whether host matches pattern. Matching is
// case-insensitive and ignores a port and a trailing dot. "*.example.com"
// matches "a.example.com" and "a.b.example.com" but not "example.com".
func HostMatch(pattern, host string) bool {
	return hostpattern.HostAllowed([]string{pattern}, normHost(host))
}

// HostAllowed reports whether host matches any of patterns.
func HostAllowed(patterns []string, host string) bool {
	return hostpattern.HostAllowed(patterns, normHost(host))
}

// Placeholders returns the distinct secret names referenced in s.
func Placeholders(s string) []string {
	var names []string
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// Substitute replaces {{secret:NAME}} placeholders in the values of h, in
// place, for a request to d. It returns what it substituted: the names of
// the secrets used (sorted, for the audit trail and session labels) and
// their values, kept inside the Substitution for its Scrubber. If any
// referenced secret is missing or may not go to d (host, port or scheme;
// see Secret.Allows), h is left unchanged and an error wrapping
// ErrNotFound or ErrHostNotAllowed is returned: a request must not go out
// with a placeholder or a secret it may not carry.
func (m *Manager) Substitute(ctx context.Context, d Destination, h http.Header) (Substitution, error) {
	values := map[string][]byte{}
	for _, vs := range h {
		for _, v := range vs {
			if !strings.Contains(v, "{{secret:") {
				continue
			}
			for _, name := range Placeholders(v) {
				if _, ok := values[name]; ok {
					continue
				}
				val, err := m.value(ctx, name, d)
				if err != nil {
					return Substitution{}, fmt.Errorf("substitute: %w", err)
				}
				if strings.ContainsAny(string(val), "\r\n\x00") {
					return Substitution{}, fmt.Errorf("substitute: secret %s holds a control character and cannot go in a header", name)
				}
				values[name] = val
			}
		}
	}
	if len(values) == 0 {
		return Substitution{}, nil
	}
	for k, vs := range h {
		for i, v := range vs {
			if strings.Contains(v, "{{secret:") {
				vs[i] = placeholderRE.ReplaceAllStringFunc(v, func(ph string) string {
					return string(values[placeholderRE.FindStringSubmatch(ph)[1]])
				})
			}
		}
		h[k] = vs
	}
	var sub Substitution
	for n, v := range values {
		sub.add(n, v)
	}
	return sub, nil
}
