package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestSessionIDSegmentClass checks the SPIFFE ID builder for session
// identities: an agent or session that is not one path segment ("." and
// "..", empty, a slash, characters SPIFFE forbids) is ErrInvalidID, never an
// ID naming another path.
func TestSessionIDSegmentClass(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("agentcloud.local")
	for _, name := range []string{"bot/.", "bot/..", "bot/", "/s1", "./s1", "../s1", "bot/a/b", "bot/a b", "bot/é", "bot/\x00", "bot/../../user/alice"} {
		id, err := NewID(td, KindSession, name)
		if !errors.Is(err, ErrInvalidID) {
			t.Errorf("NewID(session, %q) = %v, %v; want ErrInvalidID", name, id, err)
		}
	}
	for _, name := range []string{"bot/s1", "bot/a.b_c-1", "bot/" + strings.Repeat("s", 128)} {
		id, err := NewID(td, KindSession, name)
		if err != nil {
			t.Errorf("NewID(session, %q): %v", name, err)
			continue
		}
		p, err := PrincipalFromID(td, id)
		if err != nil || p.Kind != KindSession || p.Agent+"/"+p.Name != name {
			t.Errorf("round trip of %q: %+v %v", name, p, err)
		}
	}
}
