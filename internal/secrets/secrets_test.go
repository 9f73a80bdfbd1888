package secrets

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newManager(t *testing.T) (*Manager, *MemStore, []byte) {
	t.Helper()
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "keys", "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	st := NewMemStore()
	m, err := NewManager(key, st)
	if err != nil {
		t.Fatal(err)
	}
	return m, st, key
}

func TestLoadOrCreateKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k")
	k1, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: %v", err)
	}
	os.WriteFile(p, []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(p); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestCiphertextHidesPlaintext(t *testing.T) {
	ctx := context.Background()
	m, st, _ := newManager(t)
	plain := []byte("sk-live-super-secret-token-value")
	if err := m.Set(ctx, Secret{Name: "OPENAI", AllowHosts: []string{"api.openai.com"}}, plain); err != nil {
		t.Fatal(err)
	}
	rec, err := st.Get(ctx, "OPENAI")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec.Ciphertext, plain) || bytes.Contains(rec.Ciphertext, plain[:8]) {
		t.Fatal("ciphertext contains plaintext")
	}
	enc, _ := MarshalRecord(rec)
	if bytes.Contains(enc, plain) {
		t.Fatal("marshalled record contains plaintext")
	}
	// Same plaintext twice → different ciphertexts (random nonce).
	c2, _ := m.Seal("OPENAI", plain)
	if bytes.Equal(c2, rec.Ciphertext) {
		t.Fatal("nonce reuse")
	}
	got, err := m.Open("OPENAI", rec.Ciphertext)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q, %v", got, err)
	}
	// Bound to the name: the record cannot be replayed under another name.
	if _, err := m.Open("OTHER", rec.Ciphertext); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("swapped name err = %v", err)
	}
	// Tampering is detected.
	bad := bytes.Clone(rec.Ciphertext)
	bad[len(bad)-1] ^= 1
	if _, err := m.Open("OPENAI", bad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered err = %v", err)
	}
}

func TestWrongKeyFails(t *testing.T) {
	m1, st, _ := newManager(t)
	if err := m1.Set(context.Background(), Secret{Name: "A", AllowHosts: []string{"x.test"}}, []byte("v")); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{7}, KeySize)
	m2, _ := NewManager(other, st)
	h := http.Header{"Authorization": {"Bearer {{secret:A}}"}}
	if _, err := m2.Substitute(context.Background(), https("x.test"), h); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v", err)
	}
	if h.Get("Authorization") != "Bearer {{secret:A}}" {
		t.Fatal("header modified on failure")
	}
	if _, err := NewManager([]byte("short"), st); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestHostMatch(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"api.example.com", "api.example.com", true},
		{"api.example.com", "API.Example.COM", true},
		{"api.example.com", "api.example.com:443", true},
		{"api.example.com", "api.example.com.", true},
		{"api.example.com", "evil-api.example.com", false},
		{"api.example.com", "api.example.com.evil.net", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "example.com.evil.net", false},
		{"example.com", "", false},
	}
	for _, tc := range tests {
		if got := HostMatch(tc.pattern, tc.host); got != tc.want {
			t.Errorf("HostMatch(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
	for _, bad := range []string{"", "*", "*.", "a*.b", "http://x", "x.com/", "a.*.com"} {
		if ValidatePattern(bad) == nil {
			t.Errorf("ValidatePattern(%q) accepted", bad)
		}
	}
}

func TestSubstitute(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t)
	m.Set(ctx, Secret{Name: "TOKEN", AllowHosts: []string{"*.example.com"}}, []byte("t0k"))
	m.Set(ctx, Secret{Name: "USER", AllowHosts: []string{"api.example.com"}}, []byte("bob"))
	m.Set(ctx, Secret{Name: "EVIL", AllowHosts: []string{"x.example.com"}}, []byte("a\r\nX-Injected: 1"))

	h := http.Header{
		"Authorization": {"Bearer {{secret:TOKEN}}"},
		"X-User":        {"{{secret:USER}}:{{secret:TOKEN}}"},
		"X-Plain":       {"nothing"},
	}
	used, err := m.Substitute(ctx, https("api.example.com"), h)
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("Authorization") != "Bearer t0k" || h.Get("X-User") != "bob:t0k" || h.Get("X-Plain") != "nothing" {
		t.Fatalf("headers = %v", h)
	}
	if len(used.Names) != 2 || used.Names[0] != "TOKEN" || used.Names[1] != "USER" {
		t.Fatalf("used = %v", used)
	}

	h = http.Header{"X-User": {"{{secret:USER}}"}}
	if _, err := m.Substitute(ctx, https("other.example.com"), h); !errors.Is(err, ErrHostNotAllowed) {
		t.Fatalf("disallowed host err = %v", err)
	}
	if h.Get("X-User") != "{{secret:USER}}" {
		t.Fatal("header changed on refusal")
	}
	if _, err := m.Substitute(ctx, https("api.example.com"), http.Header{"A": {"{{secret:NOPE}}"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing err = %v", err)
	}
	if _, err := m.Substitute(ctx, https("x.example.com"), http.Header{"A": {"{{secret:EVIL}}"}}); err == nil {
		t.Fatal("CRLF secret substituted into header")
	}
	if used, err := m.Substitute(ctx, https("api.example.com"), http.Header{"A": {"none"}}); err != nil || !used.Empty() {
		t.Fatalf("no placeholders: %v %v", used, err)
	}
	if err := m.Set(ctx, Secret{Name: "bad name!"}, nil); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad name err = %v", err)
	}
}

func FuzzHostMatch(f *testing.F) {
	f.Add("*.example.com", "a.example.com", "Bearer {{secret:TOKEN}}")
	f.Add("api.example.com", "API.example.com.:443", "{{secret:a}}{{secret:b}}")
	f.Add("*.", ".", "{{secret:}}")
	f.Fuzz(func(t *testing.T, pattern, host, header string) {
		if HostMatch(pattern, host) && ValidatePattern(pattern) == nil {
			h := normHost(host)
			if suffix, ok := strings.CutPrefix(strings.ToLower(pattern), "*."); ok {
				if !strings.HasSuffix(h, "."+suffix) {
					t.Fatalf("%q matched %q", pattern, host)
				}
			} else if h != strings.ToLower(pattern) {
				t.Fatalf("%q matched %q", pattern, host)
			}
		}
		for _, n := range Placeholders(header) {
			if !strings.Contains(header, "{{secret:"+n+"}}") || !nameRE.MatchString(n) {
				t.Fatalf("placeholder %q not in %q", n, header)
			}
		}
	})
}

// TestMetadataAndValueApartClass: replacing a secret's metadata keeps its
// value (and the value still goes only where the new metadata allows);
// replacing its value keeps its metadata; either on a secret that does
// not exist is ErrNotFound and creates nothing; bad metadata is refused.
func TestMetadataAndValueApartClass(t *testing.T) {
	ctx := context.Background()
	key := make([]byte, KeySize)
	st := NewMemStore()
	m, err := NewManager(key, st)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, Secret{Name: "k", AllowHosts: []string{"a.example.com"}}, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	dest := func(host string) Destination { return Destination{Scheme: "https", Host: host, Port: 443} }
	if err := m.SetMetadata(ctx, Secret{Name: "k", AllowHosts: []string{"b.example.com"}}); err != nil {
		t.Fatal(err)
	}
	if v, err := m.value(ctx, "k", dest("b.example.com")); err != nil || string(v) != "v1" {
		t.Fatalf("value after a metadata change: %q %v", v, err)
	}
	if _, err := m.value(ctx, "k", dest("a.example.com")); !errors.Is(err, ErrHostNotAllowed) {
		t.Fatalf("old host after a metadata change: %v", err)
	}
	if err := m.SetValue(ctx, "k", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if v, err := m.value(ctx, "k", dest("b.example.com")); err != nil || string(v) != "v2" {
		t.Fatalf("value after a value change: %q %v", v, err)
	}
	if s, _ := m.Describe(ctx, "k"); len(s.AllowHosts) != 1 || s.AllowHosts[0] != "b.example.com" {
		t.Fatalf("metadata after a value change: %+v", s)
	}
	if err := m.SetMetadata(ctx, Secret{Name: "nope", AllowHosts: []string{"b.example.com"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("metadata of a missing secret: %v", err)
	}
	if err := m.SetValue(ctx, "nope", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("value of a missing secret: %v", err)
	}
	if names, _ := st.List(ctx); len(names) != 1 {
		t.Fatalf("records %v", names)
	}
	if err := m.SetMetadata(ctx, Secret{Name: "k", AllowHosts: []string{"bad host"}}); err == nil {
		t.Fatal("bad metadata accepted")
	}
}
