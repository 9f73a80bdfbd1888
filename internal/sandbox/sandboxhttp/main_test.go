package sandboxhttp_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
)

// TestMain: process-tier sandboxes re-execute this test binary as their
// init; it must become the init before anything else runs.
func TestMain(m *testing.M) {
	process.MaybeRunInit()
	os.Exit(m.Run())
}

const testToken = "test-token"

type tokenAuth struct{}

func (tokenAuth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "bad token")
	}
	return httpapi.Principal{ID: "admin", Kind: "admin"}, nil
}

// testServer serves the sandbox API of a real process tier on 127.0.0.1:0
// through the real Router and middleware.
type testServer struct {
	URL     string
	client  *client.Client
	router  *httpapi.Router
	manager *sandbox.Manager // nil without sandboxes
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable (needs root and user namespaces): %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := process.New(process.Config{DataDir: dir, CgroupPool: 2})
	if err != nil {
		t.Fatal(err)
	}
	return startServerWith(t, tier)
}

// startGVisorServer is startServer over a real gVisor tier.
func startGVisorServer(t testing.TB) *testServer {
	t.Helper()
	if err := gvisor.Available(""); err != nil {
		t.Skipf("gvisor tier unavailable: %v", err)
	}
	if testing.Short() {
		t.Skip("gvisor tests start runsc sandboxes (slow); skipped with -short")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := gvisor.New(gvisor.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return startServerWith(t, tier)
}

// startServerWith serves the sandbox API of tier, closed at the end of
// the test.
func startServerWith(t testing.TB, tier sandbox.Tier) *testServer {
	t.Helper()
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: tokenAuth{}, MaxBodyBytes: 1 << 20})
	sandboxhttp.New(sandboxhttp.Config{Manager: m, Tiers: []sandbox.Tier{tier}, PortKey: testPortKey}).Routes(rt)
	s := serve(t, rt, func() {
		_ = m.Close()
		_ = tier.Close()
	})
	s.manager = m
	return s
}

func serve(t testing.TB, rt *httpapi.Router, closeFn func()) *testServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rt}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		closeFn()
	})
	url := "http://" + ln.Addr().String()
	c, err := client.New(url, testToken)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{URL: url, client: c, router: rt}
}
