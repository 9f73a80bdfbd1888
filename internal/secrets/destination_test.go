package secrets

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func https(host string) Destination { return Destination{Scheme: "https", Host: host, Port: 443} }

func mustURL(t *testing.T, s string) Destination {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DestinationOf(u)
	if err != nil {
		t.Fatalf("DestinationOf(%s): %v", s, err)
	}
	return d
}

var allowHostCases = []struct {
	entry   string
	pattern string
	port    int
	bad     bool
}{
	{entry: "api.example.com", pattern: "api.example.com"},
	{entry: "API.Example.com", pattern: "api.example.com"},
	{entry: "*.example.com", pattern: "*.example.com"},
	{entry: "api.example.com:8443", pattern: "api.example.com", port: 8443},
	{entry: "*.example.com:1", pattern: "*.example.com", port: 1},
	{entry: "127.0.0.1:65535", pattern: "127.0.0.1", port: 65535},
	{entry: "api.example.com:0", bad: true},
	{entry: "api.example.com:65536", bad: true},
	{entry: "api.example.com:0443", bad: true},
	{entry: "api.example.com:+443", bad: true},
	{entry: "api.example.com:-1", bad: true},
	{entry: "api.example.com:", bad: true},
	{entry: "api.example.com:443:1", bad: true},
	{entry: "api.example.com:https", bad: true},
	{entry: ":443", bad: true},
	{entry: "[::1]:443", bad: true},
	{entry: "https://api.example.com", bad: true},
	{entry: "api.example.com/v1", bad: true},
	{entry: "user@api.example.com", bad: true},
	{entry: "*", bad: true},
	{entry: "*.", bad: true},
	{entry: "", bad: true},
	{entry: strings.Repeat("a", 300), bad: true},
}

func TestParseAllowHost(t *testing.T) {
	for _, tc := range allowHostCases {
		a, err := ParseAllowHost(tc.entry)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseAllowHost(%q) = %+v, want an error", tc.entry, a)
			} else if !strings.Contains(err.Error(), "allowed host") {
				t.Errorf("ParseAllowHost(%q): error %q does not name the entry", tc.entry, err)
			}
			continue
		}
		if err != nil || hostOnly(a.Pattern.String(), a.Port) != tc.pattern || a.Port != tc.port {
			t.Errorf("ParseAllowHost(%q) = %+v, %v; want %s port %d", tc.entry, a, err, tc.pattern, tc.port)
		}
	}
}

// TestSecretDestinationClass: a secret goes only over https to an allowed
// host on its port (443 unless the entry names one); plain http only with
// allow_http (port 80 unless the entry names one). Every substitution path
// ends in Substitute, so this is the rule for all of them.
func TestSecretDestinationClass(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t)
	defs := []Secret{
		{Name: "PLAIN", AllowHosts: []string{"api.example.com"}},
		{Name: "PORTED", AllowHosts: []string{"api.example.com:8443", "*.svc.example:9000"}},
		{Name: "HTTP", AllowHosts: []string{"api.example.com", "local.test:8080"}, AllowHTTP: true},
	}
	for _, s := range defs {
		if err := m.Set(ctx, s, []byte("value-of-"+s.Name)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		secret, url string
		ok          bool
		scheme      bool // refused for being plain http
	}{
		{"PLAIN", "https://api.example.com/x", true, false},
		{"PLAIN", "https://API.example.com:443/x", true, false},
		{"PLAIN", "https://api.example.com:8443/x", false, false},
		{"PLAIN", "http://api.example.com/x", false, true},
		{"PLAIN", "http://api.example.com:443/x", false, true},
		{"PLAIN", "https://other.example.com/", false, false},
		{"PORTED", "https://api.example.com:8443/", true, false},
		{"PORTED", "https://api.example.com/", false, false},
		{"PORTED", "https://a.svc.example:9000/", true, false},
		{"PORTED", "https://a.svc.example:9001/", false, false},
		{"PORTED", "http://api.example.com:8443/", false, true},
		{"HTTP", "http://api.example.com/", true, false},
		{"HTTP", "https://api.example.com/", true, false},
		{"HTTP", "http://api.example.com:8080/", false, false},
		{"HTTP", "http://local.test:8080/", true, false},
		{"HTTP", "https://local.test:8080/", true, false},
		{"HTTP", "http://local.test/", false, false},
	}
	for _, tc := range cases {
		h := http.Header{"Authorization": {"Bearer {{secret:" + tc.secret + "}}"}}
		sub, err := m.Substitute(ctx, mustURL(t, tc.url), h)
		if tc.ok {
			if err != nil || h.Get("Authorization") != "Bearer value-of-"+tc.secret || len(sub.Names) != 1 {
				t.Errorf("%s to %s: %v, header %q", tc.secret, tc.url, err, h.Get("Authorization"))
			}
			continue
		}
		if !errors.Is(err, ErrHostNotAllowed) || errors.Is(err, ErrSchemeNotAllowed) != tc.scheme {
			t.Errorf("%s to %s: err = %v, want host-not-allowed (scheme %v)", tc.secret, tc.url, err, tc.scheme)
		}
		if h.Get("Authorization") != "Bearer {{secret:"+tc.secret+"}}" || !sub.Empty() {
			t.Errorf("%s to %s: refused but header is %q", tc.secret, tc.url, h.Get("Authorization"))
		}
	}
	// Definitions with bad entries are refused, naming the entry.
	for _, tc := range allowHostCases {
		err := m.Set(ctx, Secret{Name: "BAD", AllowHosts: []string{tc.entry}}, []byte("x"))
		if (err != nil) != tc.bad {
			t.Errorf("Set with allow_hosts %q: %v", tc.entry, err)
		}
	}
}

func TestDestinationOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.example":        "https://a.example:443",
		"HTTP://A.example":         "http://a.example:80",
		"https://a.example:8443/x": "https://a.example:8443",
		"http://[::1]:81/":         "http://::1:81",
	} {
		if d := mustURL(t, in); d.String() != want {
			t.Errorf("DestinationOf(%s) = %s, want %s", in, d, want)
		}
	}
	for _, bad := range []string{"ftp://a.example/", "https:///x", "https://a.example:0/", "https://a.example:99999/", "/relative"} {
		u, err := url.Parse(bad)
		if err != nil {
			continue
		}
		if d, err := DestinationOf(u); err == nil {
			t.Errorf("DestinationOf(%s) = %s, want an error", bad, d)
		}
	}
}

func FuzzParseAllowHost(f *testing.F) {
	for _, tc := range allowHostCases {
		f.Add(tc.entry, "api.example.com", 443)
	}
	f.Fuzz(func(t *testing.T, entry, host string, port int) {
		a, err := ParseAllowHost(entry)
		if err != nil {
			return
		}
		if a.Port < 0 || a.Port > 65535 || ValidatePattern(hostOnly(a.Pattern.String(), a.Port)) != nil {
			t.Fatalf("ParseAllowHost(%q) = %+v", entry, a)
		}
		// The canonical form parses to the same entry.
		b, err := ParseAllowHost(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip of %q: %+v, %v", entry, b, err)
		}
		if !strings.EqualFold(a.String(), entry) {
			t.Fatalf("canonical %q differs from %q beyond case", a.String(), entry)
		}
		d := Destination{Scheme: "https", Host: strings.ToLower(host), Port: port}
		if a.Matches(d) {
			want := a.Port
			if want == 0 {
				want = 443
			}
			if port != want || !a.MatchHost(host) {
				t.Fatalf("%+v matched %s", a, d)
			}
		}
	})
}

func FuzzDestinationOf(f *testing.F) {
	for _, s := range []string{"https://a.example", "http://a.example:8080/x", "https://[::1]:0/", "ftp://x", "https://a:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		d, err := DestinationOf(u)
		if err != nil {
			return
		}
		if d.Scheme != "http" && d.Scheme != "https" || d.Host == "" || d.Port < 1 || d.Port > 65535 || d.Host != strings.ToLower(d.Host) {
			t.Fatalf("DestinationOf(%q) = %+v", raw, d)
		}
	})
}

// hostOnly is the pattern text without its port.
func hostOnly(pattern string, port int) string {
	if port == 0 {
		return pattern
	}
	if i := strings.LastIndexByte(pattern, ':'); i >= 0 {
		return pattern[:i]
	}
	return pattern
}
