package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var loopbackHostCases = []struct {
	entry string
	name  string // "" = refused
	addr  string
}{
	{"bench.test", "bench.test", "127.0.0.1"},
	{"API.Example.com=127.3.4.5", "api.example.com", "127.3.4.5"},
	{" pets.example.com = ::1 ", "pets.example.com", "::1"},
	{"x=::ffff:127.0.0.9", "x", "127.0.0.9"},
	{"bench.test=10.0.0.1", "", ""},
	{"bench.test=192.0.2.1", "", ""},
	{"bench.test=fe80::1%eth0", "", ""},
	{"bench.test=", "", ""},
	{"127.0.0.1", "", ""},
	{"::1=::1", "", ""},
	{"localhost", "", ""},
	{"a.localhost", "", ""},
	{"*.example.com", "", ""},
	{"exa mple.com", "", ""},
	{"-bad.com", "", ""},
	{"", "", ""},
	{"=127.0.0.1", "", ""},
	{strings.Repeat("a", 64) + ".com", "", ""},
}

// TestEgressLoopbackHostsClass: every malformed entry is refused naming
// egress_loopback_hosts; well-formed ones parse to a lower-case name and a
// loopback address; the setting is refused unless the API listens on
// loopback; env and file both set it.
func TestEgressLoopbackHostsClass(t *testing.T) {
	for _, tc := range loopbackHostCases {
		m, err := ParseLoopbackHosts([]string{tc.entry})
		if tc.name == "" {
			var fe FieldError
			if !errors.As(err, &fe) || fe.Field != "egress_loopback_hosts" {
				t.Errorf("%q: %v %v, want a field error", tc.entry, m, err)
			}
			c := Default()
			c.EgressLoopbackHosts = []string{tc.entry}
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "egress_loopback_hosts") {
				t.Errorf("Validate %q: %v", tc.entry, err)
			}
			continue
		}
		if err != nil || m[tc.name] != netip.MustParseAddr(tc.addr) || len(m) != 1 {
			t.Errorf("%q: %v %v, want %s=%s", tc.entry, m, err, tc.name, tc.addr)
		}
	}
	if _, err := ParseLoopbackHosts([]string{"a.test", "A.test=127.0.0.2"}); err == nil {
		t.Error("a name given twice was accepted")
	}
	many := make([]string, maxLoopbackHosts+1)
	for i := range many {
		many[i] = "h" + strings.Repeat("x", i%5) + ".test"
	}
	if _, err := ParseLoopbackHosts(many); err == nil {
		t.Error("too many entries accepted")
	}
	for listen, ok := range map[string]bool{"127.0.0.1:0": true, "localhost:7070": true, "[::1]:7070": true, "127.9.9.9:1": true,
		"0.0.0.0:7070": false, ":7070": false, "[::]:7070": false, "192.0.2.1:7070": false} {
		c := Default()
		c.Listen, c.EgressLoopbackHosts = listen, []string{"bench.test"}
		err := c.Validate()
		if ok != (err == nil) {
			t.Errorf("listen %s with loopback hosts: %v", listen, err)
		}
		if !ok && !strings.Contains(err.Error(), "loopback address") {
			t.Errorf("listen %s: error does not say why: %v", listen, err)
		}
	}
	var c Config
	if err := c.LoadEnv(mapEnv(map[string]string{"AGENTCLOUD_EGRESS_LOOPBACK_HOSTS": "a.test, b.test=127.0.0.2",
		"AGENTCLOUD_EGRESS_UPSTREAM_CA_FILE": "/x.pem"})); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.EgressLoopbackHosts, "|") != "a.test|b.test=127.0.0.2" || c.EgressUpstreamCAFile != "/x.pem" {
		t.Errorf("env: %+v", c)
	}
	path := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(path, []byte(`{"egress_loopback_hosts":["a.test"],"egress_upstream_ca_file":"/y.pem"}`), 0o600)
	c = Default()
	if err := c.LoadFile(path); err != nil || c.EgressLoopbackHosts[0] != "a.test" || c.EgressUpstreamCAFile != "/y.pem" {
		t.Errorf("file: %+v %v", c, err)
	}
}

// TestEgressUpstreamCAFileClass: a missing file, an empty one and one
// without a certificate are refused naming egress_upstream_ca_file.
func TestEgressUpstreamCAFileClass(t *testing.T) {
	dir := t.TempDir()
	empty, junk := filepath.Join(dir, "empty.pem"), filepath.Join(dir, "junk.pem")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	for _, f := range []string{filepath.Join(dir, "missing.pem"), empty, junk, dir} {
		c := Default()
		c.EgressUpstreamCAFile = f
		var errs Errors
		if err := c.Validate(); !errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != "egress_upstream_ca_file" {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func FuzzParseLoopbackHosts(f *testing.F) {
	for _, tc := range loopbackHostCases {
		f.Add(tc.entry)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		m, err := ParseLoopbackHosts([]string{entry})
		if err != nil {
			return
		}
		for name, a := range m {
			if !a.IsLoopback() || name != strings.ToLower(name) || !ValidTLSName(name) {
				t.Fatalf("%q parsed to %s=%s", entry, name, a)
			}
		}
	})
}

// mapEnv is a LoadEnv lookup over m.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

var signatureAgentCases = []struct {
	origin string
	ok     bool
}{
	{"https://agents.example.com", true},
	{"https://agents.example.com/", true},
	{"https://Agents.Example.com:8443", true},
	{"https://[2001:db8::1]", true},
	{"https://192.0.2.7:443", true},
	{"http://agents.example.com", false},
	{"https://agents.example.com/path", false},
	{"https://agents.example.com?x=1", false},
	{"https://agents.example.com?", false},
	{"https://agents.example.com#f", false},
	{"https://user:pw@agents.example.com", false},
	{"https://", false},
	{"https://*.example.com", false},
	{"https://exa mple.com", false},
	{"https://a.example.com:99999", false},
	{"https://[fe80::1%25eth0]", false},
	{"agents.example.com", false},
	{"https://" + strings.Repeat("a", 600) + ".com", false},
}

// TestEgressSignatureAgentClass: a malformed egress_signature_agent (not
// https, a path, query, fragment, userinfo, a bad host or port, too long)
// is refused naming the field and saying what is wanted; well-formed
// origins pass; the env and the file both set it.
func TestEgressSignatureAgentClass(t *testing.T) {
	for _, tc := range signatureAgentCases {
		c := Default()
		c.EgressSignatureAgent = tc.origin
		err := c.Validate()
		var errs Errors
		if tc.ok != (err == nil) {
			t.Errorf("%q: %v, want ok=%v", tc.origin, err, tc.ok)
		}
		if !tc.ok && (!errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != "egress_signature_agent" || !strings.Contains(errs[0].Detail, "https origin")) {
			t.Errorf("%q: %v, want one error naming egress_signature_agent", tc.origin, err)
		}
	}
	var c Config
	if err := c.LoadEnv(mapEnv(map[string]string{"AGENTCLOUD_EGRESS_SIGNATURE_AGENT": "https://a.test"})); err != nil || c.EgressSignatureAgent != "https://a.test" {
		t.Errorf("env: %q %v", c.EgressSignatureAgent, err)
	}
	path := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(path, []byte(`{"egress_signature_agent":"https://b.test"}`), 0o600)
	c = Default()
	if err := c.LoadFile(path); err != nil || c.EgressSignatureAgent != "https://b.test" {
		t.Errorf("file: %q %v", c.EgressSignatureAgent, err)
	}
}

func FuzzCheckOrigin(f *testing.F) {
	for _, tc := range signatureAgentCases {
		f.Add(tc.origin)
	}
	f.Fuzz(func(t *testing.T, o string) {
		if checkOrigin(o) == "" && !strings.HasPrefix(o, "https://") {
			t.Fatalf("%q accepted", o)
		}
	})
}
