package sandbox

import (
	"slices"
	"testing"
)

// TestOwnershipLabelsRoundTrip: what Own stamps, OwnershipOf reads back,
// for a user's sandbox and a session's, and grants split on commas.
func TestOwnershipLabelsRoundTrip(t *testing.T) {
	for _, tc := range []struct{ owner, agent, session string }{
		{"spiffe://td/user/alice", "", ""},
		{"spiffe://td/user/bob", "shop", "s-1"},
	} {
		var spec Spec
		Own(&spec, tc.owner, tc.agent, tc.session)
		spec.Labels[LabelEgress] = "a.example,*.b.example"
		o := OwnershipOf("sb-1", spec.Labels)
		if o.ID != "sb-1" || o.Owner != tc.owner || o.Agent != tc.agent || o.Session != tc.session {
			t.Errorf("%+v: got %+v", tc, o)
		}
		if !slices.Equal(o.Egress, []string{"a.example", "*.b.example"}) || o.Secrets != nil {
			t.Errorf("grants: %+v", o)
		}
	}
}
