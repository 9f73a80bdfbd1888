package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

func TestMain(m *testing.M) {
	process.MaybeRunInit() // the daemon's process-tier sandboxes re-execute this binary
	os.Exit(m.Run())
}

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCLIAgainstTLSDaemon runs CLI commands against a `serve --tls
// --require-client-cert` daemon: with the data dir's defaults, with explicit
// flags and env vars, and without a client certificate or CA.
func TestCLIAgainstTLSDaemon(t *testing.T) {
	for _, k := range []string{"AGENTCLOUD_SERVER", "AGENTCLOUD_TOKEN", "AGENTCLOUD_CA_CERT", "AGENTCLOUD_CLIENT_CERT", "AGENTCLOUD_CLIENT_KEY"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no well-known files
	cfg := config.Default()
	cfg.Data, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.TLS, cfg.RequireClientCert = true, true
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	data := d.DataDir()
	url := "https://" + d.Addr()
	if b, err := os.ReadFile(filepath.Join(data, daemon.URLFile)); err != nil || strings.TrimSpace(string(b)) != url {
		t.Fatalf("%s = %q %v, want %s", daemon.URLFile, b, err, url)
	}
	if fi, err := os.Stat(filepath.Join(data, daemon.AdminKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin key: %v %v", fi, err)
	}
	ca := filepath.Join(data, "ca", "ca.crt")
	empty := t.TempDir() // a --data with nothing in it

	// Defaults from --data: api.url, the CA and the admin certificate.
	if code, out, errs := runCLI(t, "--data", data, "deploy", "../../examples/hello"); code != 0 {
		t.Fatalf("deploy over mTLS: %d %s %s", code, out, errs)
	}
	code, out, errs := runCLI(t, "--data", data, "call", "hello/s1", "/")
	if code != 0 || !strings.Contains(out, "hello") {
		t.Fatalf("call over mTLS: %d %q %s", code, out, errs)
	}

	// Explicit flags: issue a client certificate for bob, then use it
	// through the environment.
	dir := t.TempDir()
	bobCrt, bobKey, bundle := filepath.Join(dir, "bob.crt"), filepath.Join(dir, "bob.key"), filepath.Join(dir, "bundle.crt")
	if code, out, errs := runCLI(t, "--data", empty, "--server", url, "--ca-cert", ca,
		"--client-cert", filepath.Join(data, daemon.AdminCertFile), "--client-key", filepath.Join(data, daemon.AdminKeyFile),
		"identity", "issue", "--spiffe-id", "user:bob", "--cert", bobCrt, "--key", bobKey, "--bundle", bundle); code != 0 {
		t.Fatalf("identity issue: %d %s %s", code, out, errs)
	}
	t.Setenv("AGENTCLOUD_SERVER", url)
	t.Setenv("AGENTCLOUD_CA_CERT", bundle)
	t.Setenv("AGENTCLOUD_CLIENT_CERT", bobCrt)
	t.Setenv("AGENTCLOUD_CLIENT_KEY", bobKey)
	if code, out, errs := runCLI(t, "--data", empty, "-o", "json", "audit", "list", "--limit", "1"); code != 1 || !strings.Contains(errs, "forbidden") {
		// bob is authenticated (a Cedar denial, not a TLS failure).
		t.Fatalf("audit list as bob: want forbidden, got %d %s %s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "--data", empty, "-o", "json", "agents", "list"); code != 0 {
		t.Fatalf("agents list as bob: %d %s %s", code, out, errs)
	}

	// No client certificate: the handshake fails, with a hint.
	t.Setenv("AGENTCLOUD_CLIENT_CERT", "")
	t.Setenv("AGENTCLOUD_CLIENT_KEY", "")
	code, _, errs = runCLI(t, "--data", empty, "agents", "list")
	if code != 1 || !strings.Contains(errs, "requires a client certificate") {
		t.Fatalf("without a client certificate: %d %s", code, errs)
	}
	// Half a pair.
	if code, _, errs := runCLI(t, "--data", empty, "--client-cert", bobCrt, "agents", "list"); code != 1 || !strings.Contains(errs, "--client-key") {
		t.Fatalf("cert without key: %d %s", code, errs)
	}
	// No CA: the server is not trusted.
	t.Setenv("AGENTCLOUD_CA_CERT", "")
	if code, _, errs := runCLI(t, "--data", empty, "--client-cert", bobCrt, "--client-key", bobKey, "agents", "list"); code != 1 || !strings.Contains(errs, "not trusted") {
		t.Fatalf("without the CA: %d %s", code, errs)
	}
	// A CA that is not the platform's.
	other := filepath.Join(dir, "other.crt")
	if err := os.WriteFile(other, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, "--data", empty, "--ca-cert", other, "agents", "list"); code != 1 || !strings.Contains(errs, "no PEM CERTIFICATE") {
		t.Fatalf("bad CA file: %d %s", code, errs)
	}
	// Plain HTTP to a TLS daemon.
	if code, _, errs := runCLI(t, "--data", empty, "--server", "http://"+d.Addr(), "agents", "list"); code != 1 || !strings.Contains(errs, "https://") {
		t.Fatalf("http to a TLS daemon: %d %s", code, errs)
	}
}

// FuzzLoadCA: any --ca-cert file content gives certificates or an error
// naming the flag, never a panic.
func FuzzLoadCA(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("not pem"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		certs, _, err := loadCA(p)
		if err != nil {
			if !strings.Contains(err.Error(), "--ca-cert") {
				t.Fatalf("error does not name the flag: %v", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
	})
}
