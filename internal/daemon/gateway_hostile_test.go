package daemon_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/gateway/gatewaytest"
)

// TestGatewayNoisyNeighbourClass: one identity sending far more than its
// share cannot starve another at the same level. The noisy flow fills its
// own queue and is refused (429, its own backlog); the quiet one, bound to
// another queue by shuffle sharding, is served every time and never
// refused, by the scheduler's count.
func TestGatewayNoisyNeighbourClass(t *testing.T) {
	cfg := floodConfig()
	for i := range cfg.Gateway.Levels {
		if l := &cfg.Gateway.Levels[i]; l.Name == "agent-batch" {
			l.Queues, l.HandSize, l.QueueLength, l.QueueTimeout = 16, 4, 4, config.Duration(30*time.Second)
		}
	}
	d, admin := slowDaemon(t, cfg)
	noisy := userClient(t, d, admin, "user:batch-noisy")
	quiet := userClient(t, d, admin, "user:batch-quiet")
	f := startFlood([]*client.Client{noisy}, func(int) string { return "n" }, 30)
	defer f.end()
	waitSaturated(t, admin, "agent-batch")
	for n := 0; n < 6; n++ {
		resp, err := quiet.Call(context.Background(), "slow", "q", "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("quiet request %d next to the noisy one: %d %s", n, resp.StatusCode, body)
		}
	}
	flows, err := admin.TrafficFlows(context.Background(), "agent-batch", 10)
	if err != nil {
		t.Fatal(err)
	}
	f.end()
	f.stop = make(chan struct{})
	// `agentcloud traffic top`: the most limited identity comes first.
	if top, err := admin.TrafficFlowsBy(context.Background(), "", 1, "rejected"); err != nil ||
		len(top.Flows) != 1 || !strings.HasSuffix(top.Flows[0].Flow, "/user/batch-noisy") {
		t.Errorf("top limited flow: %+v %v", top, err)
	}
	var q, n *api.TrafficFlow
	for i := range flows.Flows {
		switch fl := &flows.Flows[i]; {
		case strings.HasSuffix(fl.Flow, "/user/batch-quiet"):
			q = fl
		case strings.HasSuffix(fl.Flow, "/user/batch-noisy"):
			n = fl
		}
	}
	if q == nil || n == nil {
		t.Fatalf("flows: %+v", flows)
	}
	if q.Dispatched < 6 || q.Rejected != 0 {
		t.Errorf("quiet flow %+v: want 6 dispatched, none refused", *q)
	}
	if n.Rejected == 0 || f.refused.Load() == 0 {
		t.Errorf("noisy flow %+v was never refused", *n)
	}
	if r := f.first; r == nil || r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), "fair share") {
		t.Errorf("noisy flow's refusal: %+v", r)
	} else {
		checkRefusal(t, r, "agent-batch")
	}
}

// rateConfig: small rate limits per identity, per anonymous address and
// per tool, over a long window, so a few requests use them up.
func rateConfig() config.Config {
	cfg := config.Default()
	win := config.Duration(time.Minute)
	cfg.Gateway.RateLimits = []config.RateLimit{
		{Name: "identity", Quota: 3, Window: win, Key: "identity", Match: []config.FlowMatch{{Kinds: []string{"user", "agent", "session", "sandbox", "bot"}}}},
		{Name: "anonymous", Quota: 3, Window: win, Key: "identity", Match: []config.FlowMatch{{Kinds: []string{"anonymous"}}}},
		{Name: "tool", Quota: 2, Window: win, Key: "identity+tool", Match: []config.FlowMatch{{MCPMethods: []string{"tools/call"}}}},
	}
	return cfg
}

var rateState = regexp.MustCompile(`^"([a-z-]+)";r=(\d+);t=(\d+)$`)

// TestGatewayRateLimitHeadersClass: every answer under a rate limit carries
// RateLimit-Policy and RateLimit (the IETF draft's fields), and the request
// over it is a 429 with Retry-After and a problem+json body naming the
// limit and the level, for anonymous callers, users and per-tool limits on
// MCP calls alike.
func TestGatewayRateLimitHeadersClass(t *testing.T) {
	d, admin := startDaemonWith(t, rateConfig(), nil)
	base := "http://" + d.Addr()
	token := func(subject string) string {
		tok, err := admin.CreateToken(context.Background(), api.TokenRequest{Subject: subject, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	raw := func(method, path, tok string, body string) (*http.Response, error) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
		}
		return http.DefaultClient.Do(req)
	}
	alice, bob := token("user:alice"), token("user:bob")
	mcp := func(tok string) func() (*http.Response, error) {
		return func() (*http.Response, error) {
			return raw("POST", "/mcp", tok, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
		}
	}
	get := func(tok, path string) func() (*http.Response, error) {
		return func() (*http.Response, error) { return raw("GET", path, tok, "") }
	}
	for _, tc := range []struct {
		name, limit, level string
		quota, allowed     int
		do                 func() (*http.Response, error)
	}{
		{"anonymous status", "anonymous", "anonymous", 3, 3, get("", "/v1/status")},
		{"user whoami", "identity", "human-interactive", 3, 3, get(alice, "/v1/whoami")},
		{"user tool call", "tool", "human-interactive", 2, 2, mcp(bob)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i <= tc.allowed; i++ {
				resp, err := tc.do()
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				policy := resp.Header.Get("RateLimit-Policy")
				if want := fmt.Sprintf(`"%s";q=%d;w=60`, tc.limit, tc.quota); !strings.Contains(policy, want) {
					t.Errorf("request %d: RateLimit-Policy %q lacks %s", i, policy, want)
				}
				state := resp.Header.Get("RateLimit")
				if i < tc.allowed {
					if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
						t.Fatalf("request %d of %d: %d %s", i+1, tc.allowed, resp.StatusCode, body)
					}
					if !strings.Contains(state, fmt.Sprintf(`"%s";r=%d;`, tc.limit, tc.quota-i-1)) {
						t.Errorf("request %d: RateLimit %q", i, state)
					}
					continue
				}
				if resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("request over the limit: %d %s", resp.StatusCode, body)
				}
				m := rateState.FindStringSubmatch(state)
				if m == nil || m[1] != tc.limit || m[2] != "0" || m[3] == "0" {
					t.Errorf("RateLimit %q on the 429", state)
				}
				checkRefusal(t, &refusal{resp.StatusCode, resp.Header, body}, tc.level)
				var p api.Problem
				_ = json.Unmarshal(body, &p)
				if p.Limit != tc.limit || p.Type != api.KindRateLimited.TypeURI() {
					t.Errorf("429 problem %+v: want limit %s", p, tc.limit)
				}
				if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 || ra > 60 {
					t.Errorf("Retry-After %d", ra)
				}
			}
		})
	}
	// The administrator has no rate limit, and another user's budget is
	// their own.
	for i := 0; i < 5; i++ {
		if _, err := admin.WhoAmI(context.Background()); err != nil {
			t.Fatalf("admin request %d: %v", i, err)
		}
	}
	if _, err := userClient(t, d, admin, "user:carol").WhoAmI(context.Background()); err != nil {
		t.Errorf("carol after alice used hers up: %v", err)
	}
}

// hostileConfig caps connections per client address and header sizes and
// reads headers under a short timeout.
func hostileConfig() config.Config {
	cfg := config.Default()
	s := &cfg.Gateway.Server
	s.MaxConnsPerIP, s.ReadHeaderTimeout, s.MaxHeaderBytes = 20, config.Duration(time.Second), 8<<10
	return cfg
}

// dialFrom opens a TCP connection to addr from the loopback address src
// (all of 127/8 is this machine), so one test can be several clients.
func dialFrom(src, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return d.Dial("tcp", addr)
}

// metric reads one unlabelled value from /metrics.
func metric(t *testing.T, admin *client.Client, name string) float64 {
	t.Helper()
	resp, err := admin.Raw(context.Background(), "GET", "/metrics", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestGatewayHostileClientsClass: a client holding many open connections,
// a slowloris client trickling headers and a client sending oversized
// headers do not starve others: connections over the per-address cap are
// shed on accept, trickled headers are cut off by the read-header
// timeout, oversized ones answered 431, and a well-behaved client is
// served throughout.
func TestGatewayHostileClientsClass(t *testing.T) {
	d, admin := startDaemonWith(t, hostileConfig(), nil)
	addr := d.Addr()
	ctx := context.Background()
	served := func(what string) {
		t.Helper()
		if _, err := admin.Status(ctx); err != nil {
			t.Fatalf("admin status while %s: %v", what, err)
		}
		anon, _ := client.New("http://"+addr, "")
		if err := anon.Ready(ctx); err != nil {
			t.Fatalf("readyz while %s: %v", what, err)
		}
	}

	// Many open connections from one address: 20 are kept, the rest shed.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := 0; i < 500; i++ {
		c, err := dialFrom("127.0.0.2", addr)
		if err != nil {
			continue // reset at once: shed
		}
		held = append(held, c)
	}
	served("500 connections are open from 127.0.0.2")
	if shed := metric(t, admin, "agentcloud_gateway_connections_shed_total"); shed < 400 {
		t.Errorf("%v connections shed; want at least 480 of 500 over a cap of 20", shed)
	}

	// Slowloris: headers trickled a byte at a time from another address.
	var slow []net.Conn
	for i := 0; i < 10; i++ {
		c, err := dialFrom("127.0.0.3", addr)
		if err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, c := range slow {
				_, _ = c.Write([]byte("a"))
			}
		}
	}()
	served("10 slowloris connections trickle headers")
	for i, c := range slow {
		// The server closes each once the header timeout passes (the
		// bound here is generous: this asserts closing, not timing).
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("slowloris connection %d still open after 30 s", i)
		}
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
			t.Errorf("slowloris connection %d got %.60q", i, b)
		}
	}
	close(stop)

	// Header floods: one huge header, and many small ones.
	for name, hdr := range map[string]string{
		"one huge header": "X-Big: " + strings.Repeat("a", 64<<10) + "\r\n",
		"many headers":    strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 2000),
	} {
		c, err := dialFrom("127.0.0.4", addr)
		if err != nil {
			t.Fatal(err)
		}
		go fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n%s\r\n", hdr)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: %d, want 431", name, resp.StatusCode)
		}
		served(name)
	}
}

// TestGatewayMalformedSignatureClass: Web Bot Auth headers that do not
// parse, do not verify or name an unusable key directory are 4xx on every
// route, never 5xx.
func TestGatewayMalformedSignatureClass(t *testing.T) {
	d, _ := startDaemonWith(t, config.Default(), nil)
	now := time.Now().Unix()
	params := fmt.Sprintf(`;created=%d;expires=%d;keyid="k";tag="web-bot-auth"`, now, now+60)
	cases := []struct{ input, sig, agent string }{
		{`sig1=(`, `sig1=:AAAA:`, ""},
		{`sig1=("@authority")`, ``, ""},
		{`sig1=("@authority")` + params, `sig1=:not base64!:`, ""},
		{`sig1=("@authority")` + params, `sig1=:AAAA:`, `sig1="http://plain.example"`},
		{`sig1=("@authority")` + params, `sig1=:AAAA:`, `sig1="https://10.0.0.1"`},
		{`sig1=("@authority")` + params, `sig1=:AAAA:`, `garbage((`},
		{`sig1=("@authority" "@nope")` + params, `sig1=:AAAA:`, `sig1="https://bot.example"`},
		{`sig1=("@authority");created=abc`, `sig1=:AAAA:`, ""},
		{`sig1=("@authority");alg="rsa-v1_5-sha1"` + params, `sig1=:AAAA:`, ""},
		{strings.Repeat(`s=("a"),`, 800), `sig1=:AAAA:`, ""},
		{`sig1=("@authority");created=99999999999999999999`, `sig1=:AAAA:`, ""},
		{`sig1=("@authority")` + params, `sig2=:AAAA:`, ""},
		{`sig1=("signature-agent";key="sig1")` + params, `sig1=:AAAA:`, `sig1=?1`},
		{"sig1=(\"@authority\")" + params, "sig1=:" + strings.Repeat("A", 6000) + ":", ""},
	}
	for _, path := range []string{"/healthz", "/v1/status", "/v1/agents/x", "/mcp", "/nope"} {
		for i, tc := range cases {
			req, err := http.NewRequest("GET", "http://"+d.Addr()+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Signature-Input", tc.input)
			if tc.sig != "" {
				req.Header.Set("Signature", tc.sig)
			}
			if tc.agent != "" {
				req.Header.Set("Signature-Agent", tc.agent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s case %d: %v", path, i, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 && path != "/healthz" || resp.StatusCode >= 500 {
				t.Errorf("%s case %d (%.60s): %d %s", path, i, tc.input, resp.StatusCode, body)
			}
		}
	}
}

// TestGatewayWebBotAuthThroughEgress: a signed bot request is verified
// with its key directory fetched through the egress proxy (the daemon's
// test hooks let it reach a loopback server standing in for the bot's
// origin) and scheduled as the bot's flow in agent-batch; a tampered
// signature is refused 401.
func TestGatewayWebBotAuthThroughEgress(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	dir := gatewaytest.NewDirectory(time.Now, key)
	defer dir.Close()
	_, port, _ := net.SplitHostPort(dir.Addr())
	origin := "https://example.com:" + port
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{
		Resolver: loopResolver{}, AllowLoopback: true, UpstreamRoots: dir.RootCAs()})
	send := func(tamper bool) int {
		req, err := http.NewRequest("GET", "http://"+d.Addr()+"/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := gatewaytest.SignBot(req, key, origin, time.Now()); err != nil {
			t.Fatal(err)
		}
		if tamper {
			req.Header.Set("Signature", strings.Replace(req.Header.Get("Signature"), ":", ":AA", 1))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A verified bot is scheduled as itself; it is no platform principal,
	// so the router still refuses it 401.
	if code := send(false); code != http.StatusUnauthorized {
		t.Fatalf("signed bot: %d", code)
	}
	if dir.Fetches.Load() == 0 {
		t.Fatal("the key directory was not fetched")
	}
	flows, err := admin.TrafficFlows(context.Background(), "agent-batch", 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range flows.Flows {
		found = found || strings.HasPrefix(f.Flow, origin)
	}
	if !found {
		t.Errorf("no bot flow of %s in agent-batch: %+v", origin, flows.Flows)
	}
	if code := send(true); code != http.StatusUnauthorized && code != http.StatusBadRequest {
		t.Errorf("tampered signature: %d", code)
	}
	evs, err := admin.Audit(context.Background(), client.AuditQuery{Type: "egress"})
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range evs.Events {
		audited = audited || strings.HasSuffix(e.Principal, "/node/web-bot-auth")
	}
	if !audited {
		t.Errorf("the key directory fetch was not audited as the web-bot-auth node: %+v", evs.Events)
	}
}
