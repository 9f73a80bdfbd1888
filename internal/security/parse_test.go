package security

import (
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var subjectCases = []struct {
	in   string
	want string // SPIFFE ID, "" for an error
}{
	{"user:alice", "spiffe://agentcloud.local/user/alice"},
	{"admin", "spiffe://agentcloud.local/admin/admin"},
	{"session:bot/s1", "spiffe://agentcloud.local/agent/bot/session/s1"},
	{"agent:bot", "spiffe://agentcloud.local/agent/bot"},
	{"sandbox:sb-1", "spiffe://agentcloud.local/sandbox/sb-1"},
	{"node:n1", "spiffe://agentcloud.local/node/n1"},
	{"spiffe://agentcloud.local/user/bob", "spiffe://agentcloud.local/user/bob"},
	{"spiffe://other.example/user/bob", ""},
	{"user:", ""},
	{"alice", ""},
	{"wizard:merlin", ""},
	{"session:bot", ""},
	{"session:bot/../x", ""},
	{"", ""},
}

func testSecurityTD(t testing.TB) *Security {
	td, err := spiffeid.TrustDomainFromString("agentcloud.local")
	if err != nil {
		t.Fatal(err)
	}
	return &Security{td: td}
}

// TestParseSubjectClass covers every subject form the token, identity and
// policy-test routes accept, and malformed, foreign and over-long ones.
func TestParseSubjectClass(t *testing.T) {
	s := testSecurityTD(t)
	for _, c := range subjectCases {
		p, err := s.ParseSubject(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParseSubject(%.40q) = %s, want an error", c.in, p.ID)
		case c.want != "" && err != nil:
			t.Errorf("ParseSubject(%q): %v", c.in, err)
		case c.want != "" && p.ID.String() != c.want:
			t.Errorf("ParseSubject(%q) = %s, want %s", c.in, p.ID, c.want)
		}
	}
}

func FuzzParseSubject(f *testing.F) {
	for _, c := range subjectCases {
		f.Add(c.in)
	}
	s := testSecurityTD(f)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := s.ParseSubject(in)
		if err != nil {
			return
		}
		// Whatever parses is a principal of the trust domain that parses
		// back to itself.
		back, err := identity.ParsePrincipal(s.td, p.ID.String())
		if err != nil || back.ID != p.ID {
			t.Fatalf("ParseSubject(%q) = %s, which does not parse back: %v", in, p.ID, err)
		}
	})
}

var resourceCases = []struct {
	in                 string
	typ, id, parent    string
	wantValidationFail bool
}{
	{"", "", "", "", false},
	{"Agent::bot", "Agent", "bot", "", false},
	{`Agent::"bot"`, "Agent", "bot", "", false},
	{"Host::example.com", "Host", "example.com", "", false},
	{"Session::bot/s1", "Session", "s1", "bot", false},
	{"Session::bot", "Session", "", "bot", false},
	{"Platform::x", "", "", "", false},
	{"bot", "", "", "", true},
	{"Agent:bot", "", "", "", true},
}

// TestParseResourceClass covers the resource forms of POST
// /v1/policies/test, and malformed ones, which are validation problems on
// field resource.
func TestParseResourceClass(t *testing.T) {
	for _, c := range resourceCases {
		r, err := ParseResource(c.in)
		if c.wantValidationFail {
			if p := api.AsProblem(err); p == nil || p.Kind() != api.KindValidation || p.Field != "resource" {
				t.Errorf("ParseResource(%q) = %+v, %v; want a validation problem on resource", c.in, r, err)
			}
			continue
		}
		if err != nil || r != (Resource{Type: c.typ, ID: c.id, Parent: c.parent}) {
			t.Errorf("ParseResource(%q) = %+v, %v", c.in, r, err)
		}
	}
}

func FuzzParseResource(f *testing.F) {
	for _, c := range resourceCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseResource(in)
		if err != nil {
			if p := api.AsProblem(err); p == nil || p.Kind() != api.KindValidation {
				t.Fatalf("ParseResource(%q): %v is not a validation problem", in, err)
			}
			return
		}
		// The type is what precedes "::", the platform's is "".
		typ, _, _ := strings.Cut(in, "::")
		if typ == "Platform" {
			typ = ""
		}
		if r.Type != typ {
			t.Fatalf("ParseResource(%q) = %+v: type is not %q", in, r, typ)
		}
	})
}
