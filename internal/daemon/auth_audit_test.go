package daemon_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// forgedJWT builds an unsigned-looking JWT from a header and claims.
func forgedJWT(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." +
		base64.RawURLEncoding.EncodeToString([]byte("not-a-signature"))
}

// TestAuthFailureAuditBoundedClass: failed authentications are audited
// with clipped, escaped fields (the claimed sub at most 128 bytes), at most
// audit_auth_failures_per_minute per remote address, the rest counted in
// one summary record; so 100 requests with a 40 KB forged sub add
// kilobytes, not megabytes, to the audit stream, and each gets a bounded
// 401 problem.
func TestAuthFailureAuditBoundedClass(t *testing.T) {
	cfg := config.Default()
	cfg.AuditAuthFailuresPerMinute = 10
	cfg.Gateway.RateLimits = []config.RateLimit{} // the front door would refuse most of these 429 first
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	_, before, err := daemon.AuditSizeForTest(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("A", 40<<10)
	exp := time.Now().Add(time.Hour).Unix()
	hostile := strings.Repeat("\x1b[31m\n\u202e\\\x00", (16<<10)/12) // escaping in JSON doubles it
	forged := []string{
		forgedJWT(map[string]any{"alg": "ES256", "kid": "k"}, map[string]any{"sub": "spiffe://agentcloud.local/user/" + big, "exp": exp, "jti": "j"}),
		forgedJWT(map[string]any{"alg": "ES256", "kid": "k"}, map[string]any{"sub": hostile, "exp": exp, "jti": "j"}),
		forgedJWT(map[string]any{"alg": "ES256", "kid": "k"}, map[string]any{"sub": big, "exp": exp}),
		forgedJWT(map[string]any{"alg": "ES256", "kid": big}, map[string]any{"sub": "spiffe://agentcloud.local/user/alice", "exp": exp, "jti": "j"}),
		"garbage-" + big,
	}
	send := func(hc *http.Client, tok string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+d.Addr()+"/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p api.Problem
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(b, &p) != nil || p.Type != api.KindUnauthenticated.TypeURI() {
			t.Fatalf("forged token: %d %.200s", resp.StatusCode, b)
		}
		if len(b) > 2048 {
			t.Fatalf("the 401 quotes %d bytes of the request back", len(b))
		}
	}
	loop := &http.Client{Transport: &http.Transport{}}
	for i := range 100 {
		send(loop, forged[i%len(forged)])
	}
	// Another remote address has its own budget.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	for i := range 20 {
		send(other, forged[i%len(forged)])
	}
	_, after, err := daemon.AuditSizeForTest(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	added := after - before
	if added > 64<<10 {
		t.Fatalf("120 forged requests added %d bytes to the audit stream", added)
	}
	t.Logf("120 forged requests (40 KB subs) added %d bytes to the audit stream", added)
	if err := daemon.SweepAuthFailuresForTest(ctx, d); err != nil {
		t.Fatal(err)
	}
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "auth", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	perSource := map[string]int{}
	suppressed := map[string]float64{}
	for _, ev := range evs.Events {
		b, _ := json.Marshal(ev)
		if len(b) > 2048 {
			t.Errorf("an auth record is %d bytes: %.300s", len(b), b)
		}
		switch ev.Outcome {
		case "failure":
			remote, _, _ := net.SplitHostPort(fmt.Sprint(ev.Detail["remote"]))
			perSource[remote]++
			if sub, ok := ev.Detail["sub"].(string); ok {
				if len(sub) > 128+32 || strings.ContainsFunc(sub, func(r rune) bool { return !unicode.IsPrint(r) }) {
					t.Errorf("sub field not clipped and escaped: %q", sub)
				}
			}
		case "suppressed":
			suppressed[fmt.Sprint(ev.Detail["remote"])] = ev.Detail["suppressed"].(float64)
		}
	}
	if perSource["127.0.0.1"] != 10 || perSource["127.0.0.2"] != 10 {
		t.Fatalf("failures recorded per source: %v, want 10 each", perSource)
	}
	if suppressed["127.0.0.1"] != 90 || suppressed["127.0.0.2"] != 10 {
		t.Fatalf("summaries: %v, want 90 and 10 suppressed", suppressed)
	}
}
