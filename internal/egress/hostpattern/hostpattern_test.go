package hostpattern

import (
	"net/url"
	"strings"
	"testing"
)

// parseCases are the table of Parse (and the fuzz seeds).
var parseCases = []struct {
	in   string
	want Pattern // zero: refused
	fix  string  // part of the problem or fix when refused
}{
	{"api.example.com", Pattern{Name: "api.example.com"}, ""},
	{"*.example.com", Pattern{Name: "example.com", Wildcard: true}, ""},
	{"api.example.net:8443", Pattern{Name: "api.example.net", Port: 8443}, ""},
	{"*.example.org:1", Pattern{Name: "example.org", Wildcard: true, Port: 1}, ""},
	{"localhost:65535", Pattern{Name: "localhost", Port: 65535}, ""},
	{"192.0.2.10", Pattern{Name: "192.0.2.10"}, ""},
	{"192.0.2.10:8000", Pattern{Name: "192.0.2.10", Port: 8000}, ""},
	{"xn--bcher-kva.example", Pattern{Name: "xn--bcher-kva.example"}, ""},
	{"a-b.c0", Pattern{Name: "a-b.c0"}, ""},
	{"", Pattern{}, "remove it"},
	{"https://api.x.com/v1", Pattern{}, `write the host only: "api.x.com"`},
	{"api.x.com/v1", Pattern{}, `write "api.x.com"`},
	{"api.x.com?q", Pattern{}, `write "api.x.com"`},
	{"*.com", Pattern{}, "name the domain"},
	{"*", Pattern{}, "list the hosts"},
	{"*.", Pattern{}, ""},
	{"api.*.com", Pattern{}, "whole first label"},
	{"a*.com", Pattern{}, "whole first label"},
	{"a..com", Pattern{}, "labels of 1 to 63"},
	{"-a.com", Pattern{}, "labels of 1 to 63"},
	{"a-.com", Pattern{}, "labels of 1 to 63"},
	{"a_b.com", Pattern{}, "labels of 1 to 63"},
	{strings.Repeat("a", 64) + ".com", Pattern{}, "labels of 1 to 63"},
	{"A.com", Pattern{}, `write "a.com"`},
	{"a.com.", Pattern{}, `write "a.com"`},
	{"a.com.:443", Pattern{}, `write "a.com:443"`},
	{"[::1]", Pattern{}, "use a host name"},
	{"::1", Pattern{}, "use a host name"},
	{"a.com:0", Pattern{}, "port from 1 to 65535"},
	{"a.com:65536", Pattern{}, "port from 1 to 65535"},
	{"a.com:080", Pattern{}, "port from 1 to 65535"},
	{"a.com:+80", Pattern{}, "port from 1 to 65535"},
	{"a.com:", Pattern{}, "port from 1 to 65535"},
	{"a.com:http", Pattern{}, "port from 1 to 65535"},
	{"a.com:1:2", Pattern{}, "use a host name"},
	{"user@a.com", Pattern{}, "use letters"},
	{"a.com,b.com", Pattern{}, "use letters"},
	{"a .com", Pattern{}, "use letters"},
	{"a.com\x00", Pattern{}, "use letters"},
	{"bücher.example", Pattern{}, "use letters"},
	{"*.192.0.2.10", Pattern{}, "cannot have a wildcard"},
	{"*.0.2.10", Pattern{}, "numeric address"},
	{"0x7f000001", Pattern{}, "numeric address"},
	{"127.1", Pattern{}, "numeric address"},
	{"2130706433", Pattern{}, "numeric address"},
	{"a.0x", Pattern{}, "numeric address"},
	{strings.Repeat("a.", 130) + "com", Pattern{}, "maximum"},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.in, func(t *testing.T) {
			p, err := Parse(tc.in)
			if tc.want == (Pattern{}) {
				e, ok := err.(*Error)
				if !ok {
					t.Fatalf("Parse(%q) = %+v, %v; want an *Error", tc.in, p, err)
				}
				if e.Problem == "" || e.Fix == "" || !strings.Contains(e.Error(), tc.fix) {
					t.Fatalf("Parse(%q): problem %q, fix %q; want a mention of %q", tc.in, e.Problem, e.Fix, tc.fix)
				}
				return
			}
			if err != nil || p != tc.want {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tc.in, p, err, tc.want)
			}
			if p.String() != tc.in {
				t.Fatalf("String() = %q, want %q", p.String(), tc.in)
			}
		})
	}
}

func TestParseHostRefusesPorts(t *testing.T) {
	if _, err := ParseHost("api.example.com"); err != nil {
		t.Fatal(err)
	}
	_, err := ParseHost("api.example.com:443")
	if e, ok := err.(*Error); !ok || !strings.Contains(e.Fix, `write "api.example.com"`) {
		t.Fatalf("ParseHost with a port: %v", err)
	}
}

// TestMatch is the table of what a pattern allows: host and port together.
func TestMatch(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		port    int
		want    bool
	}{
		{"api.example.com", "api.example.com", 443, true},
		{"api.example.com", "api.example.com", 80, true},
		{"api.example.com", "api.example.com", 8443, false},
		{"api.example.com", "api.example.com", 22, false},
		{"api.example.com", "API.Example.COM.", 443, true},
		{"api.example.com", "evil-api.example.com", 443, false},
		{"api.example.com", "api.example.com.evil.net", 443, false},
		{"api.example.com", "example.com", 443, false},
		{"api.example.com:8443", "api.example.com", 8443, true},
		{"api.example.com:8443", "api.example.com", 443, false},
		{"api.example.com:8443", "api.example.com", 80, false},
		{"api.example.com:80", "api.example.com", 443, false},
		{"*.example.com", "a.example.com", 443, true},
		{"*.example.com", "a.b.example.com", 80, true},
		{"*.example.com", "a.example.com", 8080, false},
		{"*.example.com", "example.com", 443, false},
		{"*.example.com", "badexample.com", 443, false},
		{"*.example.com", ".example.com", 443, false},
		{"*.example.com:9000", "x.example.com", 9000, true},
		{"*.example.com:9000", "x.example.com", 443, false},
		{"192.0.2.10:8000", "192.0.2.10", 8000, true},
		{"192.0.2.10", "192.0.2.10", 8000, false},
		{"192.0.2.10", "192.0.2.100", 443, false},
		{"API.example.com", "api.example.com", 443, true}, // stored before validation tightened
		{"bad pattern", "bad pattern", 443, false},
		{"*", "anything", 443, false},
		{"", "", 443, false},
	}
	for _, tc := range tests {
		if got := Allowed([]string{tc.pattern}, tc.host, tc.port); got != tc.want {
			t.Errorf("Allowed([%q], %q, %d) = %v, want %v", tc.pattern, tc.host, tc.port, got, tc.want)
		}
	}
	if !HostAllowed([]string{"x.test", "*.example.com"}, "a.example.com") || HostAllowed([]string{"a.example.com:443"}, "a.example.com") {
		t.Error("HostAllowed")
	}
}

func TestForURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com/v1":     "api.example.com:443",
		"http://127.0.0.1:8000/v1":       "127.0.0.1:8000",
		"http://LLM.Local.:11434":        "llm.local:11434",
		"http://localhost/mcp":           "localhost:80",
		"http://[::1]:8000/":             "",
		"ftp://files.example.com/x":      "",
		"https://user:pw@h.example.com/": "h.example.com:443",
	} {
		u, _ := url.Parse(in)
		got, err := ForURL(u)
		if (want == "") != (err != nil) || got != want {
			t.Errorf("ForURL(%q) = %q, %v; want %q", in, got, err, want)
		}
		if err == nil && !Allowed([]string{got}, u.Hostname(), mustPort(u)) {
			t.Errorf("ForURL(%q) = %q does not allow its own URL", in, got)
		}
	}
}

func mustPort(u *url.URL) int {
	switch u.Port() {
	case "":
		if u.Scheme == "https" {
			return 443
		}
		return 80
	default:
		var n int
		for _, c := range u.Port() {
			n = n*10 + int(c-'0')
		}
		return n
	}
}

// FuzzParse: Parse never panics; what it accepts prints back as written,
// parses to the same pattern, matches its own name on its own port, and
// nothing it refuses matches anything.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add(tc.in, "a.example.com", 443)
	}
	f.Fuzz(func(t *testing.T, s, host string, port int) {
		p, err := Parse(s)
		if err != nil {
			if e, ok := err.(*Error); !ok || e.Problem == "" || e.Fix == "" {
				t.Fatalf("Parse(%q): %v is not a described *Error", s, err)
			}
			if Allowed([]string{s}, host, port) && s == strings.ToLower(s) {
				t.Fatalf("refused pattern %q allows %q:%d", s, host, port)
			}
			return
		}
		if p.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, p.String())
		}
		if q, err := Parse(p.String()); err != nil || q != p {
			t.Fatalf("Parse(%q) round trip: %+v %v", s, q, err)
		}
		own := p.Name
		if p.Wildcard {
			own = "x." + own
		}
		wantPort := p.Port
		if wantPort == 0 {
			wantPort = 443
		}
		if !p.Match(own, wantPort) || p.Match(own, wantPort+1) && p.Port != 0 {
			t.Fatalf("%q does not match its own host and port", s)
		}
		if p.Wildcard && p.MatchHost(p.Name) {
			t.Fatalf("%q matches its bare domain", s)
		}
		if got := Allowed([]string{s}, host, port); got != p.Match(host, port) {
			t.Fatalf("Allowed and Match disagree on %q vs %q:%d", s, host, port)
		}
		if p.Match(host, port) {
			h := strings.TrimSuffix(strings.ToLower(host), ".")
			if !(h == p.Name || p.Wildcard && strings.HasSuffix(h, "."+p.Name)) {
				t.Fatalf("%q matched %q", s, host)
			}
		}
	})
}
