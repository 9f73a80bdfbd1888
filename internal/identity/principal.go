// Package identity owns agentcloud's workload identity: the trust domain, the
// built-in certificate authority that issues X.509-SVIDs and JWT-SVIDs, the
// Principal type every other package reasons about, token revocation and the
// HTTP authentication helper. It does not decide what a principal may do
// (that is internal/policy) and it does not persist anything except the CA
// key material in the directory it is given.
package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultTrustDomain is the trust domain used when none is configured.
const DefaultTrustDomain = "agentcloud.local"

// Kind is the kind of a principal, taken from the first path segment of its
// SPIFFE ID.
type Kind string

// Principal kinds.
const (
	KindUser    Kind = "user"
	KindAgent   Kind = "agent"
	KindSession Kind = "session"
	KindSandbox Kind = "sandbox"
	KindNode    Kind = "node"
	KindAdmin   Kind = "admin"
)

// Errors returned when a SPIFFE ID does not name a principal.
var (
	ErrInvalidID        = errors.New("invalid spiffe id")
	ErrWrongTrustDomain = errors.New("wrong trust domain")
	ErrUnknownKind      = errors.New("unknown principal kind")
)

// Principal is an authenticated caller.
//
// For a session, Name is the session name and Agent the agent it belongs to;
// for every other kind Agent is empty.
type Principal struct {
	Kind  Kind
	Name  string
	Agent string
	ID    spiffeid.ID
}

// String returns the SPIFFE ID of p.
func (p Principal) String() string { return p.ID.String() }

// IsZero reports whether p is the zero Principal.
func (p Principal) IsZero() bool { return p.ID.IsZero() }

// NewID builds the SPIFFE ID for a principal of the given kind. For
// KindSession, name must be "AGENT/SESSION".
func NewID(td spiffeid.TrustDomain, kind Kind, name string) (spiffeid.ID, error) {
	var segs []string
	switch kind {
	case KindUser, KindAgent, KindSandbox, KindNode, KindAdmin:
		segs = []string{string(kind), name}
	case KindSession:
		agent, sess, ok := strings.Cut(name, "/")
		if !ok {
			return spiffeid.ID{}, fmt.Errorf("session name %q: want AGENT/SESSION: %w", name, ErrInvalidID)
		}
		segs = []string{"agent", agent, "session", sess}
	default:
		return spiffeid.ID{}, fmt.Errorf("kind %q: %w", kind, ErrUnknownKind)
	}
	id, err := spiffeid.FromSegments(td, segs...)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("build %s id %q: %w: %w", kind, name, ErrInvalidID, err)
	}
	return id, nil
}

// ParsePrincipal parses a SPIFFE ID string and checks it belongs to td.
func ParsePrincipal(td spiffeid.TrustDomain, s string) (Principal, error) {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return Principal{}, fmt.Errorf("parse principal %q: %w: %w", s, ErrInvalidID, err)
	}
	return PrincipalFromID(td, id)
}

// PrincipalFromID maps a SPIFFE ID in td to a Principal. Recognised paths:
//
//	/user/U  /agent/A  /agent/A/session/S  /sandbox/X  /node/N  /admin/U
func PrincipalFromID(td spiffeid.TrustDomain, id spiffeid.ID) (Principal, error) {
	if id.IsZero() {
		return Principal{}, fmt.Errorf("empty id: %w", ErrInvalidID)
	}
	if !id.MemberOf(td) {
		return Principal{}, fmt.Errorf("principal %s not in trust domain %s: %w", id, td, ErrWrongTrustDomain)
	}
	segs := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	p := Principal{ID: id}
	switch {
	case len(segs) == 2 && segs[0] == "agent":
		p.Kind, p.Name = KindAgent, segs[1]
	case len(segs) == 4 && segs[0] == "agent" && segs[2] == "session":
		p.Kind, p.Agent, p.Name = KindSession, segs[1], segs[3]
	case len(segs) == 2:
		switch k := Kind(segs[0]); k {
		case KindUser, KindSandbox, KindNode, KindAdmin:
			p.Kind, p.Name = k, segs[1]
		default:
			return Principal{}, fmt.Errorf("principal %s: kind %q: %w", id, segs[0], ErrUnknownKind)
		}
	default:
		return Principal{}, fmt.Errorf("principal %s: path %q is not /KIND/NAME or /agent/A/session/S: %w", id, id.Path(), ErrUnknownKind)
	}
	if p.Name == "" {
		return Principal{}, fmt.Errorf("principal %s: empty name: %w", id, ErrInvalidID)
	}
	return p, nil
}
