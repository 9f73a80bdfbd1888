package daemon_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// TestHTTP3ServesTheGuardedAPIClass: with tls and http3 the daemon answers
// over HTTP/3 at its TCP port, through the same front door: public routes,
// a bearer token, the admin's client certificate (mTLS), refusals without
// credentials and for a malformed id; TCP responses carry Alt-Svc; random
// datagrams to the UDP port do not stop it; shutdown frees the port.
func TestHTTP3ServesTheGuardedAPIClass(t *testing.T) {
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.TLS, cfg.HTTP3, cfg.SandboxPoolProcess = t.TempDir(), "127.0.0.1:0", true, true, 0
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = d.Shutdown(context.Background())
		}
	})
	b, err := os.ReadFile(filepath.Join(cfg.Data, daemon.URLFile))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(strings.TrimSpace(string(b)), "https://")
	roots := certPool(t, filepath.Join(d.DataDir(), "ca", "ca.crt"))
	admin, err := tls.LoadX509KeyPair(filepath.Join(d.DataDir(), "admin.crt"), filepath.Join(d.DataDir(), "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{admin}},
		QUICConfig: &quic.Config{HandshakeIdleTimeout: 10 * time.Second}}
	defer tr.Close()
	anon := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer anon.Close()
	token := adminToken(t, d.DataDir())
	cases := []struct {
		name, path, token string
		rt                http.RoundTripper
		want              int
	}{
		{"healthz", "/healthz", "", anon, 200},
		{"status with a bearer token", "/v1/status", token, anon, 200},
		{"whoami with the admin's client certificate", "/v1/whoami", "", tr, 200},
		{"status without credentials", "/v1/status", "", anon, 401},
		{"status with a wrong token", "/v1/status", "x" + token, anon, 401},
		{"malformed id", "/v1/agents/" + strings.Repeat("a", 300), token, anon, 400},
	}
	check := func(t *testing.T) {
		for _, tc := range cases {
			req, _ := http.NewRequest("GET", "https://"+addr+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := (&http.Client{Transport: tc.rt, Timeout: 20 * time.Second}).Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || resp.Proto != "HTTP/3.0" {
				t.Fatalf("%s: %s %d %s", tc.name, resp.Proto, resp.StatusCode, body)
			}
			if tc.want >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%s: content type %q", tc.name, resp.Header.Get("Content-Type"))
			}
		}
	}
	check(t)

	tcp := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 20 * time.Second}
	resp, err := tcp.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(addr)
	if alt := resp.Header.Get("Alt-Svc"); !strings.HasPrefix(alt, `h3=":`+port+`"`) {
		t.Fatalf("Alt-Svc on TCP: %q", alt)
	}

	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 5, 40, 1200, 1500, 9000} {
		for range 5 {
			b := make([]byte, n)
			_, _ = rand.Read(b)
			if n > 5 {
				b[0] |= 0xc0 // a long header, QUIC v1, random rest
				copy(b[1:5], []byte{0, 0, 0, 1})
			}
			_, _ = conn.Write(b)
		}
	}
	conn.Close()
	tr.CloseIdleConnections()
	anon.CloseIdleConnections()
	check(t)

	stopped = true
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("UDP port still held after shutdown: %v", err)
	}
	pc.Close()
}

// TestHTTP3NeedsTLS: a daemon with http3 and no tls is refused, naming the
// field and the fix.
func TestHTTP3NeedsTLS(t *testing.T) {
	cfg := config.Default()
	cfg.Data, cfg.Listen, cfg.HTTP3 = t.TempDir(), "127.0.0.1:0", true
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	if _, err := daemon.New(cfg, nil); err == nil || !strings.Contains(err.Error(), "http3") || !strings.Contains(err.Error(), "set tls") {
		t.Fatalf("want a refusal naming http3, got %v", err)
	}
}
