package security

// The front door's needs (frontdoor.go): identifying a request without
// auditing it, and the egress rules of Web Bot Auth key directory fetches.

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// Identify verifies r's credentials exactly as Authenticate does (the
// bootstrap admin token, an mTLS client SVID, a bearer JWT-SVID for the
// API audience, revocation included) but records nothing: the front door
// calls it to schedule the request by verified identity, and a request
// whose credentials fail is then refused, and audited once, by the
// router's Authenticate. A request with no credentials is an error too.
func (s *Security) Identify(r *http.Request) (Principal, error) {
	noCert := r.TLS == nil || len(r.TLS.PeerCertificates) == 0
	if tok := bearer(r); noCert && strings.HasPrefix(tok, auth.TokenPrefix) && s.bootstrap != nil {
		if s.bootstrap.Valid(tok) {
			return s.admin, nil
		}
		return Principal{}, fmt.Errorf("identify: invalid bootstrap admin token: %w", identity.ErrUnauthenticated)
	}
	p, err := s.idauth.Authenticate(r)
	if err != nil {
		return Principal{}, fmt.Errorf("identify: %w", err)
	}
	return Principal{ID: p.ID.String(), Kind: string(p.Kind)}, nil
}

// KeyDirectoryNode is the node name the front door fetches Web Bot Auth
// key directories as: spiffe://TD/node/web-bot-auth.
const KeyDirectoryNode = "web-bot-auth"

// KeyDirectoryPath is the well-known path of a Web Bot Auth signer's key
// directory; key directory fetches may GET nothing else.
const KeyDirectoryPath = "/.well-known/http-message-signatures-directory"

// KeyDirectoryCaller is the egress caller of the front door's key
// directory fetches: the web-bot-auth node identity with
// PurposeKeyDirectory (no secrets, no private destinations).
func (s *Security) KeyDirectoryCaller() (egress.Caller, error) {
	id, err := identity.NewID(s.td, identity.KindNode, KeyDirectoryNode)
	if err != nil {
		return egress.Caller{}, err
	}
	return egress.Caller{ID: id.String(), Purpose: egress.PurposeKeyDirectory, Target: "web-bot-auth"}, nil
}

// decideKeyDirectoryEgress allows a key directory fetch: a GET of the
// well-known directory path over https to any public host (the proxy
// refuses private and loopback destinations for this purpose).
func decideKeyDirectoryEgress(r egress.Request) egress.Decision {
	switch {
	case r.Scheme != "https":
		return egress.Decision{Verdict: egress.Deny, Reason: "a key directory is fetched over https only"}
	case r.Method != http.MethodGet:
		return egress.Decision{Verdict: egress.Deny, Reason: "a key directory fetch is a GET"}
	case r.Path != KeyDirectoryPath:
		return egress.Decision{Verdict: egress.Deny, Reason: "a key directory fetch may read " + KeyDirectoryPath + " only"}
	}
	return egress.Decision{Verdict: egress.Allow, Reason: "web bot auth key directory"}
}

// KeyDirectoryFetcher fetches Web Bot Auth key directories through proxy
// as the web-bot-auth node (KeyDirectoryCaller): https GETs of the
// well-known path to public hosts only, audited by the proxy.
type KeyDirectoryFetcher struct {
	Sec   *Security
	Proxy *egress.Proxy
}

// Fetch GETs the key directory at url.
func (f KeyDirectoryFetcher) Fetch(ctx context.Context, url string) (*http.Response, error) {
	if !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("key directory %q: not https", url)
	}
	caller, err := f.Sec.KeyDirectoryCaller()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	req.Header.Set("Accept", "application/http-message-signatures-directory+json")
	return f.Proxy.Do(ctx, caller, req)
}
