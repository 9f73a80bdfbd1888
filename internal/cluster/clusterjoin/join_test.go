package clusterjoin

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
)

// joinBundleFor makes a data dir with its trust material and returns its
// join bundle.
func joinBundleFor(t testing.TB, td string) (config.Config, []byte) {
	t.Helper()
	cfg := config.Default()
	cfg.Data, cfg.TrustDomain = t.TempDir(), td
	var buf bytes.Buffer
	if err := Write(cfg, &buf); err != nil {
		t.Fatal(err)
	}
	return cfg, buf.Bytes()
}

func joiner(t *testing.T, bundle []byte, mode os.FileMode) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "join.json")
	if err := os.WriteFile(path, bundle, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Data, cfg.Join, cfg.Cluster, cfg.ClusterListen, cfg.NodeID = t.TempDir(), path, "c", "127.0.0.1:0", "n1"
	return &cfg
}

// install installs cfg's join bundle.
func install(cfg *config.Config) error {
	_, err := Install(*cfg)
	return err
}

// TestJoinBundleClass: a join bundle installs the first node's CA, secrets
// key and admin token into a new data dir (again: a no-op); a data dir
// with material of its own, another trust domain, a bundle others may
// read, and every malformed or inconsistent bundle are refused naming
// what is wrong.
func TestJoinBundleClass(t *testing.T) {
	first, bundle := joinBundleFor(t, "agentcloud.local")
	d := joiner(t, bundle, 0o600)
	for range 2 {
		if err := install(d); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"ca/ca.crt", "ca/ca.key", "ca/jwt.key", "secrets.key", "admin.token"} {
		a, _ := os.ReadFile(filepath.Join(first.Data, name))
		b, err := os.ReadFile(filepath.Join(d.Data, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s not installed as on the first node: %v", name, err)
		}
		if st, _ := os.Stat(filepath.Join(d.Data, name)); st != nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", name, st.Mode().Perm())
		}
	}
	// A second install of the same bundle writes nothing.
	if done, err := Install(*d); err != nil || done {
		t.Fatalf("second install: wrote %v, %v", done, err)
	}

	// A data dir with its own CA refuses another cluster's bundle.
	other, _ := joinBundleFor(t, "agentcloud.local")
	d2 := joiner(t, bundle, 0o600)
	d2.Data = other.Data
	if err := install(d2); err == nil || !strings.Contains(err.Error(), "different") {
		t.Fatalf("data dir with its own CA: %v", err)
	}
	// Another trust domain.
	d3 := joiner(t, bundle, 0o600)
	d3.TrustDomain = "other.test"
	if err := install(d3); err == nil || !strings.Contains(err.Error(), "trust-domain") {
		t.Fatalf("other trust domain: %v", err)
	}
	// A bundle others may read.
	if err := install(joiner(t, bundle, 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("bundle mode 0644: %v", err)
	}

	var good map[string]any
	if err := json.Unmarshal(bundle, &good); err != nil {
		t.Fatal(err)
	}
	_, otherBundle := joinBundleFor(t, "agentcloud.local")
	var foreign map[string]any
	_ = json.Unmarshal(otherBundle, &foreign)
	edit := func(k string, v any) []byte {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"oversized", "bytes", bytes.Repeat([]byte(" "), maxJoinBundle+1)},
		{"not JSON", "", []byte("{")},
		{"unknown field", "extra", edit("extra", "x")},
		{"format", "format", edit("format", "v2")},
		{"no format", "format", edit("format", nil)},
		{"CA of another cluster with this key", "ca_key", edit("ca_crt", foreign["ca_crt"])},
		{"trust domain", "ca_crt", edit("trust_domain", "other.test")},
		{"cert not PEM", "ca_crt", edit("ca_crt", "junk")},
		{"key not PEM", "ca_key", edit("ca_key", "junk")},
		{"jwt key", "jwt_key", edit("jwt_key", good["ca_crt"])},
		{"secrets key size", "secrets_key", edit("secrets_key", "AAAA")},
		{"admin token", "admin_token", edit("admin_token", "hunter2hunter2hunter2")},
		{"admin token with newline", "admin_token", edit("admin_token", good["admin_token"].(string)+"\nx")},
	}
	for _, tc := range cases {
		_, err := parseJoinBundle(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want an error naming %q, got %v", tc.name, tc.want, err)
		}
		if err := install(joiner(t, tc.data, 0o600)); err == nil {
			t.Errorf("%s: installed", tc.name)
		}
	}
}

// FuzzJoinBundle: no input makes the join bundle parser panic, and what
// it accepts is a complete bundle.
func FuzzJoinBundle(f *testing.F) {
	_, bundle := joinBundleFor(f, "agentcloud.local")
	f.Add(bundle)
	f.Add([]byte(`{"format":"agentcloud-join-bundle/1"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseJoinBundle(data)
		if err == nil && (b.CACert == "" || b.CAKey == "" || len(b.SecretsKey) == 0 || b.AdminToken == "") {
			t.Fatalf("accepted an incomplete bundle: %q", data)
		}
	})
}
