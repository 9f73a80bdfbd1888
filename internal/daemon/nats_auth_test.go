package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// TestNATSListenerAuthClass: an exposed embedded NATS listener admits only
// the node's nkey user — no anonymous client, no other key, no
// token — and off loopback it speaks TLS only; the node itself keeps
// working through its authenticated connection.
func TestNATSListenerAuthClass(t *testing.T) {
	for _, c := range []struct {
		name   string
		listen string // where the daemon listens
		tls    bool   // whether the listener must speak TLS
	}{
		{"loopback", "127.0.0.1:0", false},
		{"all interfaces", "0.0.0.0:0", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
			cfg := config.Default()
			cfg.Data = t.TempDir()
			cfg.NATSListen = strings.Replace(c.listen, ":0", ":"+port, 1)
			d, admin := startDaemonWith(t, cfg, nil)
			_ = d
			ctx := context.Background()
			if _, err := admin.Status(ctx); err != nil {
				t.Fatalf("the node cannot use its own store: %v", err)
			}
			url := "nats://127.0.0.1:" + port
			seed := filepath.Join(cfg.Data, daemon.NATSUserSeedFile)
			if fi, err := os.Stat(seed); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("seed file %s: %v %v", seed, fi, err)
			}
			var secure []nats.Option
			if c.tls {
				pem, err := os.ReadFile(filepath.Join(cfg.Data, "ca", "ca.crt"))
				if err != nil {
					t.Fatal(err)
				}
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(pem)
				secure = append(secure, nats.Secure(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}))
			}
			other, _ := nkeys.CreateUser()
			otherSeed, _ := other.Seed()
			otherFile := filepath.Join(t.TempDir(), "other.nk")
			_ = os.WriteFile(otherFile, otherSeed, 0o600)
			otherOpt, err := nats.NkeyOptionFromSeed(otherFile)
			if err != nil {
				t.Fatal(err)
			}
			refused := map[string][]nats.Option{
				"anonymous":      secure,
				"another nkey":   append([]nats.Option{otherOpt}, secure...),
				"a token":        append([]nats.Option{nats.Token("admin")}, secure...),
				"user/password":  append([]nats.Option{nats.UserInfo("admin", "admin")}, secure...),
				"node key as id": append([]nats.Option{nats.Nkey("UABC", func([]byte) ([]byte, error) { return nil, nil })}, secure...),
			}
			if c.tls {
				nodeKey, err := nats.NkeyOptionFromSeed(seed)
				if err != nil {
					t.Fatal(err)
				}
				refused["node key without TLS"] = []nats.Option{nodeKey}
			}
			for name, opts := range refused {
				nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0))...)
				if err == nil {
					nc.Close()
					t.Errorf("%s: connected", name)
				}
			}
			// The node's own key works, and with it the store's full API.
			var topts *tls.Config
			if c.tls {
				pem, _ := os.ReadFile(filepath.Join(cfg.Data, "ca", "ca.crt"))
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(pem)
				topts = &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
			}
			st, err := store.Open(ctx, store.Options{URL: url, NKeySeedFile: seed, ClientTLS: topts})
			if err != nil {
				t.Fatalf("the node's nkey user: %v", err)
			}
			defer st.Close()
			if err := st.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNATSListenerNeverUnauthenticated: the store refuses to start a
// listener without authentication anywhere, and off loopback without TLS.
func TestNATSListenerNeverUnauthenticated(t *testing.T) {
	ctx := context.Background()
	for _, o := range []store.Options{
		{Dir: t.TempDir(), Listen: "127.0.0.1:" + strings.TrimPrefix(freePort(t), "127.0.0.1:")},
		{Dir: t.TempDir(), Listen: "0.0.0.0:" + strings.TrimPrefix(freePort(t), "127.0.0.1:"), NKeySeedFile: filepath.Join(t.TempDir(), "u.nk")},
	} {
		st, err := store.Open(ctx, o)
		if err == nil {
			st.Close()
			t.Errorf("listener %s (seed %q) started", o.Listen, o.NKeySeedFile)
		}
	}
}
