package daemon_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// TestStartFailureClosesPartsClass: a start that fails at any of several
// parts (the listener's address taken, an operator certificate that does
// not exist, after the listener) closes every part it started, backward:
// the data dir's lock and store are released, no client file is left, and
// a daemon on the same data dir then starts and serves.
func TestStartFailureClosesPartsClass(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for name, breakIt := range map[string]func(*config.Config){
		"listen address taken": func(c *config.Config) { c.Listen = taken.Addr().String() },
		"missing certificate":  func(c *config.Config) { c.TLS, c.TLSCert, c.TLSKey = true, missing, missing },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Data = t.TempDir()
			cfg.Listen = "127.0.0.1:0"
			breakIt(&cfg)
			cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
			d, err := daemon.New(cfg, nil)
			if err != nil {
				t.Fatalf("config refuses it before start: %v", err)
			}
			if err := d.Start(context.Background()); err == nil {
				_ = d.Shutdown(context.Background())
				t.Fatal("start succeeded")
			}
			if _, err := os.Stat(filepath.Join(cfg.Data, daemon.AddrFile)); !os.IsNotExist(err) {
				t.Fatalf("%s left behind: %v", daemon.AddrFile, err)
			}
			cfg2 := config.Default()
			cfg2.Data, cfg2.Listen = cfg.Data, "127.0.0.1:0"
			cfg2.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
			d2, err := daemon.New(cfg2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := d2.Start(context.Background()); err != nil {
				t.Fatalf("restart on the same data dir: %v", err)
			}
			if err := d2.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
