package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestMain lets tests re-run this binary as the real agentcloud CLI, so
// crash and signal tests exercise a separate daemon process.
func TestMain(m *testing.M) {
	process.MaybeRunInit() // the daemon's process-tier sandboxes re-execute this binary
	if os.Getenv("AGENTCLOUD_TEST_MAIN") == "1" {
		os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func startDaemon(t testing.TB) (*daemon.Daemon, *client.Client) {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	tok, err := os.ReadFile(filepath.Join(cfg.Data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

func TestDaemonEndpoints(t *testing.T) {
	d, c := startDaemon(t)
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("readyz: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.Store.Mode != "embedded" || st.Store.SyncMode != "group" || st.Version == "" {
		t.Fatalf("status: %+v", st)
	}
	who, err := c.WhoAmI(ctx)
	if err != nil || who.Kind != "admin" {
		t.Fatalf("whoami: %+v %v", who, err)
	}
	// Everything but health checks needs a token.
	anon, _ := client.New("http://"+d.Addr(), "")
	for _, p := range []string{"/v1/status", "/metrics", "/v1/whoami"} {
		err := anon.Do(ctx, "GET", p, nil, nil)
		if !api.IsKind(err, api.KindUnauthenticated) {
			t.Errorf("%s without token: want unauthenticated, got %v", p, err)
		}
	}
	if err := anon.Ready(ctx); err != nil {
		t.Errorf("readyz must be public: %v", err)
	}
	if err := anon.Do(ctx, "GET", "/healthz", nil, nil); err != nil {
		t.Errorf("healthz must be public: %v", err)
	}
	resp, err := c.Raw(ctx, "GET", "/metrics", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"agentcloud_http_requests_total", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Shutdown is safe to call again (the test's cleanup calls it a third time).
	for i := range 2 {
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %d: %v", i+1, err)
		}
	}
}

// TestOpenAPICoversEveryRoute fails when a route is registered without being
// in /openapi.json.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	d, c := startDaemon(t)
	var doc map[string]any
	if err := c.Do(context.Background(), "GET", "/openapi.json", nil, &doc); err != nil {
		t.Fatal(err)
	}
	rt, ok := d.Handler().(*httpapi.Router)
	if !ok {
		t.Fatal("daemon handler is not the router")
	}
	if err := httpapi.CheckOpenAPI(rt, doc); err != nil {
		t.Fatal(err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", doc["openapi"])
	}
	b, _ := json.Marshal(doc["paths"])
	if !strings.Contains(string(b), "/v1/status") {
		t.Fatal("status route missing")
	}
}

func TestH2C(t *testing.T) {
	d, _ := startDaemon(t)
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: p}}
	resp, err := hc.Get("http://" + d.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("proto %s, want HTTP/2 over cleartext", resp.Proto)
	}
}

func TestDataDirLocked(t *testing.T) {
	d, _ := startDaemon(t)
	if _, err := os.Stat(filepath.Join(d.DataDir(), daemon.AddrFile)); err != nil {
		t.Fatalf("api.addr not written: %v", err)
	}
	cfg := config.Default()
	cfg.Data = d.DataDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d2, _ := daemon.New(cfg, nil)
	err := d2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second daemon on same data dir: want lock error, got %v", err)
	}
}

func TestInvalidConfigRefused(t *testing.T) {
	cfg := config.Default()
	cfg.Listen = "nowhere"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	if _, err := daemon.New(cfg, nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("want error naming listen, got %v", err)
	}
}

// BenchmarkStartReady measures start of a fresh daemon (new data dir) until
// it is ready to serve. Target: under 1 s on the 2-core machine.
func BenchmarkStartReady(b *testing.B) {
	for b.Loop() {
		cfg := config.Default()
		cfg.Data = b.TempDir()
		cfg.Listen = "127.0.0.1:0"
		cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
		d, err := daemon.New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := d.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		c, _ := client.New("http://"+d.Addr(), "")
		if err := c.WaitReady(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(start).Microseconds()), "µs-to-ready")
		b.StopTimer()
		_ = d.Shutdown(context.Background())
		b.StartTimer()
	}
}
