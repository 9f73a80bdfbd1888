// Package gatewaytest holds what tests and benchmarks of the front door
// share: real SPIFFE identities (a throwaway CA from internal/identity whose
// JWT-SVIDs the gateway's Identifier verifies, as the daemon's will), Jain's
// fairness index, and the flood harness that measures how a human's latency
// holds up while agents flood the gateway, with an SVG plot of it. It is
// imported by tests, `go test -bench` and internal/bench (`agentcloud bench
// gateway`), never by the daemon.
package gatewaytest

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// Audience is the JWT audience the identities are issued for.
const Audience = "agentcloud"

// Identities is a throwaway certificate authority and the Identifier over
// it: bearer JWT-SVIDs and client certificates are verified by
// internal/identity exactly as the daemon verifies them.
type Identities struct {
	CA   *identity.CA
	auth *identity.Authenticator

	mu     sync.Mutex // protects tokens
	tokens map[string]string
}

// NewIdentities creates a CA in dir.
func NewIdentities(dir string) (*Identities, error) {
	ca, err := identity.LoadOrCreateCA(identity.Config{JWTTTL: 24 * time.Hour}, dir)
	if err != nil {
		return nil, err
	}
	return &Identities{CA: ca, auth: &identity.Authenticator{CA: ca, Audience: Audience}, tokens: map[string]string{}}, nil
}

// Token returns a bearer JWT-SVID for a principal of kind named name
// ("AGENT/SESSION" for sessions), minting it once.
func (x *Identities) Token(kind identity.Kind, name string) (string, error) {
	key := string(kind) + "/" + name
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := x.tokens[key]; ok {
		return t, nil
	}
	id, err := identity.NewID(x.CA.TrustDomain(), kind, name)
	if err != nil {
		return "", err
	}
	t, _, err := x.CA.IssueJWT(id, []string{Audience}, 24*time.Hour)
	if err != nil {
		return "", err
	}
	x.tokens[key] = t
	return t, nil
}

// Authorize sets r's bearer token for the principal.
func (x *Identities) Authorize(r *http.Request, kind identity.Kind, name string) error {
	t, err := x.Token(kind, name)
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+t)
	return nil
}

// SPIFFEID is the SPIFFE ID of a principal.
func (x *Identities) SPIFFEID(kind identity.Kind, name string) string {
	id, err := identity.NewID(x.CA.TrustDomain(), kind, name)
	if err != nil {
		return ""
	}
	return id.String()
}

// Identify implements gateway.Identifier with internal/identity's
// authenticator.
func (x *Identities) Identify(r *http.Request) (gateway.Identity, error) {
	if r.Header.Get("Authorization") == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		return gateway.Identity{}, nil
	}
	p, err := x.auth.Authenticate(r)
	if err != nil {
		if errors.Is(err, identity.ErrUnauthenticated) {
			return gateway.Identity{}, nil
		}
		return gateway.Identity{}, fmt.Errorf("identify: %w", err)
	}
	m := gateway.MethodJWT
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		m = gateway.MethodMTLS
	}
	return gateway.Identity{Kind: gateway.Kind(p.Kind), ID: p.ID.String(), Method: m, Agent: p.Agent}, nil
}

var _ gateway.Identifier = (*Identities)(nil)

// Jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// takes everything.
func Jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}
