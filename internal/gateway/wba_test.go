package gateway_test

import (
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway"
	"github.com/agentcloud/agentcloud/internal/gateway/clock"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewaytest"
	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
)

// TestWebBotAuthThroughGateway: a verified signer is a bot flow in
// agent-batch (or where a signer pattern sends it); replayed, expired and
// wrongly keyed signatures are refused 401, malformed ones 400; a signer
// whose directory is down is scheduled as anonymous.
func TestWebBotAuthThroughGateway(t *testing.T) {
	clk := clock.NewFake(t0)
	_, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	dir := gatewaytest.NewDirectory(clk.Now, key)
	defer dir.Close()
	cfg := config.DefaultGateway()
	cfg.Concurrency.Adaptive = false
	cfg.FlowSchemas = append(config.DefaultFlowSchemas(), config.FlowSchema{
		Name: "trusted-crawler", Level: "agent-interactive", Precedence: 150,
		Match: []config.FlowMatch{{Kinds: []string{"bot"}, Signers: []string{"https://crawler.example/**"}}},
	})
	gw, err := gateway.New(cfg, gateway.Deps{Fetcher: dir.Fetcher(), Clock: clk, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan gateway.Class, 10)
	h := gw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := gateway.ClassFrom(r.Context())
		seen <- c
	}))
	do := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	signed := func(k ed25519.PrivateKey, origin string, at time.Time) *http.Request {
		r := httptest.NewRequest("GET", "https://api.test/v1/agents", nil)
		if err := gatewaytest.SignBot(r, k, origin, at); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := signed(key, "https://bot.example", clk.Now())
	if w := do(r); w.Code != 200 {
		t.Fatalf("verified bot: %d %s", w.Code, w.Body)
	}
	c := <-seen
	if c.Identity.Kind != gateway.KindBot || c.Identity.ID != "https://bot.example/.well-known/http-message-signatures-directory" || c.Level != "agent-batch" {
		t.Fatalf("class %+v", c)
	}
	if w := do(signed(key, "https://crawler.example", clk.Now())); w.Code != 200 || (<-seen).Level != "agent-interactive" {
		t.Fatalf("signer pattern: %d", w.Code)
	}
	refused := []struct {
		name string
		r    *http.Request
		code int
	}{
		{"replayed", r.Clone(r.Context()), 401},
		{"expired", signed(key, "https://bot.example", clk.Now().Add(-10*time.Minute)), 401},
		{"wrong key", func() *http.Request {
			r := signed(other, "https://bot.example", clk.Now())
			// Claim the published key's id for a signature made with another.
			in := r.Header.Get("Signature-Input")
			r.Header.Set("Signature-Input", replaceKeyID(in, key))
			return r
		}(), 401},
		{"malformed", func() *http.Request {
			r := httptest.NewRequest("GET", "https://api.test/v1/agents", nil)
			r.Header.Set("Signature-Input", `sig1=("@authority"`)
			r.Header.Set("Signature", `sig1=:AAAA:`)
			return r
		}(), 400},
	}
	for _, tc := range refused {
		w := do(tc.r)
		if w.Code != tc.code {
			t.Fatalf("%s: %d, want %d: %s", tc.name, w.Code, tc.code, w.Body)
		}
		p := problemOf(t, w)
		if tc.code == 401 && (p.Kind() != api.KindUnauthenticated || p.Field != "Signature") {
			t.Fatalf("%s: problem %+v", tc.name, p)
		}
	}
	// The directory of a new signer is down: not attributed, anonymous.
	dir.SetStatus(503)
	if w := do(signed(key, "https://down.example", clk.Now())); w.Code != 200 {
		t.Fatalf("unverified: %d", w.Code)
	}
	if c := <-seen; c.Identity.Kind != gateway.KindAnonymous {
		t.Fatalf("unverified signer attributed: %+v", c)
	}
}

// replaceKeyID makes a signature claim key's id.
func replaceKeyID(input string, key ed25519.PrivateKey) string {
	const marker = `keyid="`
	j := strings.Index(input, marker) + len(marker)
	k := j + strings.IndexByte(input[j:], '"')
	return input[:j] + webbotauth.Thumbprint(key.Public().(ed25519.PublicKey)) + input[k:]
}
