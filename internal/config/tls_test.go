package config

import (
	"errors"
	"net"
	"strings"
	"testing"
)

var tlsNameCases = []struct {
	name string
	ok   bool
}{
	{"agents.example.com", true},
	{"localhost", true},
	{"*.example.com", true},
	{"10.0.0.5", true},
	{"::1", true},
	{"2001:db8::7", true},
	{"a-b.c0", true},
	{"", false},
	{"*.", false},
	{"*", false},
	{"a..b", false},
	{"-a.b", false},
	{"a-.b", false},
	{"Agents.example.com", false},
	{"a b", false},
	{"fe80::1%eth0", false},
	{"https://agents.example.com", false},
	{"a.*.b", false},
	{strings.Repeat("a", 64) + ".b", false},
	{strings.Repeat("a.", 127) + "bc", false},
}

func TestValidTLSName(t *testing.T) {
	for _, c := range tlsNameCases {
		if got := ValidTLSName(c.name); got != c.ok {
			t.Errorf("ValidTLSName(%q) = %v, want %v", c.name, got, c.ok)
		}
	}
}

// FuzzValidTLSName: a name accepted is an IP address or a DNS name that
// net.ParseIP and the label rules agree with; never a panic.
func FuzzValidTLSName(f *testing.F) {
	for _, c := range tlsNameCases {
		f.Add(c.name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidTLSName(s) {
			return
		}
		if net.ParseIP(s) == nil && (len(s) > 255 || strings.ContainsAny(s, " /:%@\x00") || strings.ToLower(s) != s) {
			t.Fatalf("accepted %q", s)
		}
	})
}

// TestTLSSettingsClass: every way to get the server certificate settings
// wrong is refused with the field named, from the file, the environment or
// the flags (which all end in Validate).
func TestTLSSettingsClass(t *testing.T) {
	cases := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"cert without key", func(c *Config) { c.TLS, c.TLSCert = true, "/x.crt" }, "tls_key"},
		{"key without cert", func(c *Config) { c.TLS, c.TLSKey = true, "/x.key" }, "tls_key"},
		{"cert without tls", func(c *Config) { c.TLSCert, c.TLSKey = "/x.crt", "/x.key" }, "tls_cert"},
		{"names without tls", func(c *Config) { c.TLSNames = []string{"a.example"} }, "tls_names"},
		{"names with an own cert", func(c *Config) {
			c.TLS, c.TLSCert, c.TLSKey, c.TLSNames = true, "/x.crt", "/x.key", []string{"a.example"}
		}, "tls_names"},
		{"bad name", func(c *Config) { c.TLS, c.TLSNames = true, []string{"a.example", "not a name"} }, "tls_names"},
		{"url as name", func(c *Config) { c.TLS, c.TLSNames = true, []string{"https://a.example"} }, "tls_names"},
		{"too many names", func(c *Config) { c.TLS = true; c.TLSNames = make([]string, 65); fill(c.TLSNames) }, "tls_names"},
		{"http3 without tls", func(c *Config) { c.HTTP3 = true }, "http3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			var errs Errors
			if err := c.Validate(); !errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != tc.field || errs[0].Detail == "" {
				t.Fatalf("want one error on %s, got %v", tc.field, err)
			}
		})
	}
	good := Default()
	good.TLS, good.TLSNames = true, []string{"agents.example.com", "10.0.0.5", "*.agents.example.com"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}

	// The environment and the file reach the same fields.
	env := map[string]string{"AGENTCLOUD_TLS": "true", "AGENTCLOUD_TLS_NAMES": " a.example, 10.0.0.5 ,,", "AGENTCLOUD_TLS_CERT": "/c", "AGENTCLOUD_TLS_KEY": "/k"}
	c := Default()
	if err := c.LoadEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.TLSNames, "|") != "a.example|10.0.0.5" || c.TLSCert != "/c" || c.TLSKey != "/k" {
		t.Fatalf("env not applied: %+v", c)
	}
	c = Default()
	if err := c.decode(strings.NewReader(`{"tls":true,"tls_names":["a.example"],"tls_cert":"","tls_key":""}`), "test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.TLSNames[0] != "a.example" {
		t.Fatalf("file: %v %+v", err, c.TLSNames)
	}
	c = Default()
	if err := c.decode(strings.NewReader(`{"tls_names":"a.example"}`), "test"); err == nil || !strings.Contains(err.Error(), "tls_names") {
		t.Fatalf("a string for the list: %v", err)
	}
}

func fill(names []string) {
	for i := range names {
		names[i] = "n.example"
	}
}

// TestHTTP3NeedsTLSClass: http3 without tls is refused naming the field and
// the fix, whichever source set it (file, environment); with tls it passes.
func TestHTTP3NeedsTLSClass(t *testing.T) {
	sources := map[string]func(*Config) error{
		"file": func(c *Config) error { return c.decode(strings.NewReader(`{"http3":true}`), "test") },
		"env": func(c *Config) error {
			return c.LoadEnv(func(k string) (string, bool) { return "true", k == "AGENTCLOUD_HTTP3" })
		},
		"field": func(c *Config) error { c.HTTP3 = true; return nil },
	}
	for name, set := range sources {
		t.Run(name, func(t *testing.T) {
			c := Default()
			if err := set(&c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			var errs Errors
			if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Field != "http3" || !strings.Contains(errs[0].Detail, "set tls") {
				t.Fatalf("want one error naming http3 and the fix, got %v", err)
			}
			c.TLS = true
			if err := c.Validate(); err != nil {
				t.Fatalf("with tls: %v", err)
			}
		})
	}
	c := Default()
	if err := c.LoadEnv(func(k string) (string, bool) { return "yes please", k == "AGENTCLOUD_HTTP3" }); err == nil || !strings.Contains(err.Error(), "AGENTCLOUD_HTTP3") {
		t.Fatalf("a bad bool: %v", err)
	}
}
