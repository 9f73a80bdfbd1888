package cluster

import (
	"strings"
	"testing"
)

// FuzzDecodePeerCall: the peer route's decoder never panics, and a call
// it accepts names an agent and a session.
func FuzzDecodePeerCall(f *testing.F) {
	for _, s := range []string{"", "{", "[]", `{"agent":"a"}`, `{"agent":"a","session":"s"}`,
		`{"agent":"a","session":"s","method":"POST","url":"http://a.agents.internal/","headers":[["k","v"]],"body":"aGk="}`,
		`{"agent":"a","session":"s","x":1}`, `{"agent":"a","session":"s"} {}`, `{"agent":"a","session":"s","body":"!"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := decodePeerCall(strings.NewReader(in))
		if err == nil && (c.Agent == "" || c.Session == "") {
			t.Fatalf("%q accepted without agent or session: %+v", in, c)
		}
	})
}
