package gateway_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewaytest"
	"github.com/agentcloud/agentcloud/internal/identity"
)

// TestClientSVIDIdentity: over a real TLS connection a client SVID is the
// identity (method mtls), classified by its SPIFFE ID like a bearer token.
func TestClientSVIDIdentity(t *testing.T) {
	ids, err := gatewaytest.NewIdentities(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.DefaultGateway()
	cfg.Concurrency.Adaptive = false
	gw, err := gateway.New(cfg, gateway.Deps{Identifier: ids})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan gateway.Class, 1)
	td := ids.CA.TrustDomain()
	nodeID := spiffeid.RequireFromSegments(td, "node", "n1")
	serverSVID, err := ids.CA.NewRotator(nodeID, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: ids.CA.ServerTLSConfig(serverSVID), Handler: gw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := gateway.ClassFrom(r.Context())
		seen <- c
	}))}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	userID, _ := identity.NewID(td, identity.KindUser, "alice")
	clientSVID, err := ids.CA.NewRotator(userID)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: ids.CA.ClientTLSConfig(clientSVID, nodeID)}, Timeout: 20 * time.Second}
	resp, err := client.Get("https://" + ln.Addr().String() + "/v1/agents")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c := <-seen
	if c.Identity.Method != gateway.MethodMTLS || c.Identity.ID != userID.String() || c.Level != "human-interactive" {
		t.Fatalf("class %+v", c)
	}
}

// TestAdaptiveLimitWired: with the adaptive limit on, service times that
// grow with concurrency shrink the gateway's concurrency limit, and the
// levels' seats are re-apportioned from it. The service is simulated on
// the fake clock: each request holds for 5 ms per four requests running,
// as on a saturated server, and a driver moves the clock two milliseconds
// at a time.
func TestAdaptiveLimitWired(t *testing.T) {
	e := newEnv(t, func(c *config.Gateway) {
		c.Concurrency = config.GatewayConcurrency{Limit: 40, Adaptive: true, Min: 5, Max: 100, Tolerance: 1.5}
		c.RateLimits = []config.RateLimit{}
		c.Levels = config.DefaultLevels()
		for i := range c.Levels {
			c.Levels[i].LendablePercent = 100
			c.Levels[i].BorrowingLimitPercent = nil
			c.Levels[i].QueueLength = 1000
			c.Levels[i].QueueTimeout = 0
		}
	})
	var running atomic.Int64
	h := e.gw.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		n := running.Add(1)
		defer running.Add(-1)
		d := 5 * time.Millisecond * time.Duration(max(1, n/4))
		done := make(chan struct{})
		e.clk.AfterFunc(d, func() { close(done) })
		<-done
	}))
	var stop atomic.Bool
	var wg sync.WaitGroup
	client := func() {
		defer wg.Done()
		for !stop.Load() {
			h.ServeHTTP(httptest.NewRecorder(), e.req(t, "GET", "/v1/x", identity.KindSandbox, "sb", ""))
		}
	}
	drive := func(steps int) {
		for i := 0; i < steps; i++ {
			e.clk.Advance(2 * time.Millisecond)
			time.Sleep(20 * time.Microsecond) // let the clients run; pacing, not an assertion
		}
	}
	wg.Add(1)
	go client() // unloaded: the limiter learns the service time
	drive(1500)
	for i := 0; i < 39; i++ {
		wg.Add(1)
		go client()
	}
	drive(5000)
	stop.Store(true)
	for running.Load() > 0 || e.gw.Traffic(0).Levels[3].Queued > 0 {
		drive(10)
	}
	drive(100)
	wg.Wait()
	tr := e.gw.Traffic(0)
	seats := 0
	for _, l := range tr.Levels {
		seats += l.NominalSeats
	}
	t.Logf("limit after the run: %d", tr.ConcurrencyLimit)
	if tr.ConcurrencyLimit >= 40 || seats != tr.ConcurrencyLimit {
		t.Fatalf("limit %d (seats %d); want it shrunk below 40 and re-apportioned", tr.ConcurrencyLimit, seats)
	}
}
