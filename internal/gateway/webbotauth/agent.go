// Package webbotauth verifies Web Bot Auth: requests signed with HTTP
// Message Signatures (RFC 9421, Ed25519) under tag "web-bot-auth", whose
// signer names its key directory in the Signature-Agent field. It resolves
// that directory (/.well-known/http-message-signatures-directory) through an
// injected Fetcher, checks the directory's own possession proofs, caches it
// for its HTTP validity, selects keys by their JWK thumbprint and refuses
// replayed, expired and wrongly keyed signatures. It decides only who signed;
// what a verified signer may do is the caller's policy (internal/gateway
// classifies it). For the outbound side, Signer signs requests as one
// signer (a node key) and serves that signer's directory (signer.go).
package webbotauth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/dunglas/httpsfv"
)

// WellKnownPath is where a directory is served on its origin.
const WellKnownPath = "/.well-known/http-message-signatures-directory"

// ErrAgent marks a Signature-Agent field or member that cannot be used.
var ErrAgent = errors.New("signature-agent")

// errUnsupportedType marks a member whose discovery type this verifier does
// not implement (the draft says: ignore the member).
var errUnsupportedType = errors.New("unsupported Signature-Agent type")

// agentMember returns the directory URL named by the Signature-Agent member
// key (or by the whole field in the legacy string form, where key is "").
func agentMember(lines []string, key string) (string, error) {
	if len(lines) == 0 {
		return "", fmt.Errorf("%w: the field is absent", ErrAgent)
	}
	joined := strings.TrimLeft(strings.Join(lines, ", "), " ")
	var it httpsfv.Item
	if key == "" {
		if !strings.HasPrefix(joined, `"`) {
			return "", fmt.Errorf("%w: a signature covering the whole field needs the legacy string form", ErrAgent)
		}
		v, err := httpsfv.UnmarshalItem(lines)
		if err != nil {
			return "", fmt.Errorf("%w: not a structured string: %w", ErrAgent, err)
		}
		it = v
	} else {
		if strings.HasPrefix(joined, `"`) {
			return "", fmt.Errorf("%w: member %q asked of a legacy string field", ErrAgent, key)
		}
		d, err := httpsfv.UnmarshalDictionary(lines)
		if err != nil {
			return "", fmt.Errorf("%w: not a structured dictionary: %w", ErrAgent, err)
		}
		m, ok := d.Get(key)
		if !ok {
			return "", fmt.Errorf("%w: no member %q", ErrAgent, key)
		}
		v, ok := m.(httpsfv.Item)
		if !ok {
			return "", fmt.Errorf("%w: member %q is an inner list", ErrAgent, key)
		}
		it = v
	}
	s, ok := it.Value.(string)
	if !ok {
		return "", fmt.Errorf("%w: the value is not a string", ErrAgent)
	}
	if it.Params != nil {
		if t, ok := it.Params.Get("type"); ok {
			tok, isTok := t.(httpsfv.Token)
			if !isTok {
				return "", fmt.Errorf("%w: type is not a token", ErrAgent)
			}
			if tok != "directory" {
				return "", fmt.Errorf("%w: %w %q (only directory)", ErrAgent, errUnsupportedType, string(tok))
			}
		}
	}
	return DirectoryURL(s)
}

// DirectoryURL checks that origin is an https origin (an optional "/" path,
// nothing else) and returns its normalized well-known directory URL, which
// is the signer's identifier.
func DirectoryURL(origin string) (string, error) {
	if len(origin) > 512 {
		return "", fmt.Errorf("%w: the origin is longer than 512 bytes", ErrAgent)
	}
	u, err := url.Parse(origin)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not a URL", ErrAgent, origin)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("%w: %q is not https", ErrAgent, origin)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return "", fmt.Errorf("%w: %q is not an origin (no path, query, fragment or userinfo)", ErrAgent, origin)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.ContainsAny(host, " %") {
		return "", fmt.Errorf("%w: %q has no host", ErrAgent, origin)
	}
	port := u.Port()
	if port == "443" {
		port = ""
	}
	hp := host
	if strings.Contains(host, ":") {
		hp = "[" + host + "]"
	}
	if port != "" {
		hp = net.JoinHostPort(host, port)
	}
	return "https://" + hp + WellKnownPath, nil
}
