package daemon_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// startTLSDaemon starts a --tls daemon on cfg (a fresh data dir) and returns
// it with the address a local client dials (from api.url).
func startTLSDaemon(t *testing.T, mutate func(*config.Config)) (*daemon.Daemon, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.TLS, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", true, 0
	mutate(&cfg)
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	b, err := os.ReadFile(filepath.Join(cfg.Data, daemon.URLFile))
	if err != nil {
		t.Fatal(err)
	}
	return d, strings.TrimPrefix(strings.TrimSpace(string(b)), "https://")
}

func certPool(t *testing.T, pemFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(pemFile)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatalf("no certificates in %s", pemFile)
	}
	return p
}

// handshake dials addr and verifies the server's certificate the web PKI
// way (roots, then name as host name or IP address), as curl or a browser
// would; it returns the server's leaf.
func handshake(addr, name string, roots *x509.CertPool, client ...tls.Certificate) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: name, Certificates: client, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestServerCertificateNamesClass: the node certificate of `serve --tls`
// verifies, with the platform CA as root and the usual host name check, for
// every name a client can dial: the listen IP, localhost, every local
// address of an unspecified listener, and tls_names; and for no other name.
func TestServerCertificateNamesClass(t *testing.T) {
	t.Run("loopback listener and tls_names", func(t *testing.T) {
		d, addr := startTLSDaemon(t, func(c *config.Config) { c.TLSNames = []string{"agents.internal", "10.9.8.7"} })
		if addr != d.Addr() {
			t.Fatalf("api.url names %s, listener is %s", addr, d.Addr())
		}
		roots := certPool(t, filepath.Join(d.DataDir(), "ca", "ca.crt"))
		for _, name := range []string{"127.0.0.1", "localhost", "agents.internal"} {
			if _, err := handshake(addr, name, roots); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		leaf, err := handshake(addr, "127.0.0.1", roots)
		if err != nil {
			t.Fatal(err)
		}
		if err := leaf.VerifyHostname("10.9.8.7"); err != nil {
			t.Errorf("tls_names IP: %v", err)
		}
		for _, name := range []string{"evil.example", "10.9.8.8", "agents.internal.evil.example"} {
			if _, err := handshake(addr, name, roots); err == nil {
				t.Errorf("%s: verified, want a host name mismatch", name)
			}
		}
		// A real client other than Go's.
		if curl, err := exec.LookPath("curl"); err == nil {
			out, err := exec.Command(curl, "-sS", "--cacert", filepath.Join(d.DataDir(), "ca", "ca.crt"), "https://"+addr+"/healthz").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ok") {
				t.Errorf("curl https://%s/healthz: %v %s", addr, err, out)
			}
		}
	})

	t.Run("unspecified listener", func(t *testing.T) {
		d, addr := startTLSDaemon(t, func(c *config.Config) { c.Listen = "0.0.0.0:0" })
		_, port, _ := net.SplitHostPort(d.Addr())
		if addr != "127.0.0.1:"+port {
			t.Fatalf("api.url names %s, want 127.0.0.1:%s", addr, port)
		}
		if b, _ := os.ReadFile(filepath.Join(d.DataDir(), daemon.AddrFile)); strings.TrimSpace(string(b)) != addr {
			t.Fatalf("%s = %q, want %s", daemon.AddrFile, b, addr)
		}
		roots := certPool(t, filepath.Join(d.DataDir(), "ca", "ca.crt"))
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil { // a 0.0.0.0 listener is IPv4 only
				continue
			}
			ip := ipn.IP.String()
			if _, err := handshake(net.JoinHostPort(ip, port), ip, roots); err != nil {
				t.Errorf("local address %s: %v", ip, err)
			}
			n++
		}
		if n == 0 {
			t.Fatal("no local IPv4 address to try")
		}
		leaf, err := handshake(addr, "localhost", roots)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := os.Hostname(); err == nil && config.ValidTLSName(strings.ToLower(h)) {
			if err := leaf.VerifyHostname(strings.ToLower(h)); err != nil {
				t.Errorf("host name %s: %v", h, err)
			}
		}
	})

	t.Run("IPv6 loopback listener", func(t *testing.T) {
		if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		} else {
			ln.Close()
		}
		d, addr := startTLSDaemon(t, func(c *config.Config) { c.Listen = "[::1]:0" })
		roots := certPool(t, filepath.Join(d.DataDir(), "ca", "ca.crt"))
		if _, err := handshake(addr, "::1", roots); err != nil {
			t.Fatal(err)
		}
	})
}

// testCA is an operator's own CA for tls_cert tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "operator test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a leaf for dns names and IPs to certPath/keyPath.
func (ca *testCA) issue(t *testing.T, serial int64, certPath, keyPath string, names ...string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	// A distinct modification time even on coarse file system clocks.
	later := time.Now().Add(time.Duration(serial) * time.Second)
	_ = os.Chtimes(certPath, later, later)
}

// TestOperatorCertificateClass: with tls_cert/tls_key the daemon serves the
// operator's certificate (verified by name against the operator's CA), picks
// up a renewed one, keeps the last good one when the files break, and still
// authenticates clients by platform SVIDs only.
func TestOperatorCertificateClass(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	op := newTestCA(t)
	op.issue(t, 100, crt, key, "agents.test", "127.0.0.1")
	opPool := x509.NewCertPool()
	opPool.AddCert(op.cert)

	d, addr := startTLSDaemon(t, func(c *config.Config) { c.TLSCert, c.TLSKey = crt, key })
	leaf, err := handshake(addr, "agents.test", opPool)
	if err != nil {
		t.Fatalf("operator certificate by name: %v", err)
	}
	if leaf.SerialNumber.Int64() != 100 {
		t.Fatalf("served serial %v, want the operator's 100", leaf.SerialNumber)
	}
	if _, err := handshake(addr, "agents.test", certPool(t, filepath.Join(d.DataDir(), "ca", "ca.crt"))); err == nil {
		t.Fatal("the platform CA verified the operator's certificate")
	}

	// Client identities still come from the platform CA.
	whoami := func(client ...tls.Certificate) (string, int) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: opPool, ServerName: "agents.test", Certificates: client}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/v1/whoami")
		if err != nil {
			return err.Error(), 0
		}
		defer resp.Body.Close()
		var w struct {
			ID string `json:"principal"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&w)
		return w.ID, resp.StatusCode
	}
	admin, err := tls.LoadX509KeyPair(filepath.Join(d.DataDir(), daemon.AdminCertFile), filepath.Join(d.DataDir(), daemon.AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if id, code := whoami(admin); code != http.StatusOK || !strings.Contains(id, "admin") {
		t.Fatalf("admin SVID over the operator's certificate: %d %s", code, id)
	}
	ocrt, okey := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	op.issue(t, 7, ocrt, okey, "mallory.test")
	mallory, err := tls.LoadX509KeyPair(ocrt, okey)
	if err != nil {
		t.Fatal(err)
	}
	if id, code := whoami(mallory); code == http.StatusOK {
		t.Fatalf("a client certificate from the operator's CA was accepted as %s", id)
	}

	// Renewal: the next handshake serves the new certificate.
	op.issue(t, 101, crt, key, "agents.test", "127.0.0.1")
	if leaf, err := handshake(addr, "agents.test", opPool); err != nil || leaf.SerialNumber.Int64() != 101 {
		t.Fatalf("after renewal: %v %v", leaf.SerialNumber, err)
	}
	// Broken files: the last good certificate stays.
	if err := os.WriteFile(crt, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	_ = os.Chtimes(crt, later, later)
	if leaf, err := handshake(addr, "agents.test", opPool); err != nil || leaf.SerialNumber.Int64() != 101 {
		t.Fatalf("after a broken renewal: %v %v", leaf, err)
	}

	// Files that do not load stop start-up with the setting named.
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.TLS, cfg.TLSCert, cfg.TLSKey = t.TempDir(), "127.0.0.1:0", true, filepath.Join(dir, "missing.crt"), key
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d2, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("missing tls_cert: %v", err)
	}
}
