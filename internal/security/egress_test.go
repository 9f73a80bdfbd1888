package security

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/store"
)

// agentTable is a fixed AgentDirectory: the agents a test deployed, by name.
type agentTable map[string]session.AgentInfo

func (a agentTable) AgentInfo(_ context.Context, name string) (session.AgentInfo, bool, error) {
	info, ok := a[name]
	return info, ok, nil
}

const (
	alice   = "spiffe://agentcloud.local/user/alice"
	botS1   = "spiffe://agentcloud.local/agent/bot/session/s1"
	adminID = "spiffe://agentcloud.local/admin/admin"
)

// newSecurity is a Security over a fresh embedded store, with agent bot
// owned by alice.
func newSecurity(t *testing.T) *Security {
	t.Helper()
	return newSecurityAgents(t, agentTable{"bot": {Owner: alice, Manifest: bundle.Manifest{Name: "bot", Egress: []string{"api.example.com", "paste.example.net"}}}})
}

// newSecurityAgents is newSecurity with the agents of agents.
func newSecurityAgents(t *testing.T, agents AgentDirectory) *Security {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, Config{TrustDomain: "agentcloud.local", CADir: dir + "/ca", DataDir: dir},
		Deps{Store: st, Agents: agents})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
		st.Close()
	})
	return s
}

func sessionCall() egress.Caller {
	return egress.Caller{ID: botS1, Purpose: egress.PurposeSession, Agent: "bot", Session: "s1",
		Allow: []string{"api.example.com", "paste.example.net"}, Owner: alice}
}

func egressReq(caller, host string, port int) egress.Request {
	return reqAs(egress.Caller{ID: caller}, host, port)
}

func reqAs(c egress.Caller, host string, port int) egress.Request {
	return egress.Request{Caller: c, Scheme: "https", Method: "GET", Host: host, Port: port, Path: "/"}
}

// TestEgressDecisionClass covers every way an outbound request is decided:
// a session's egress list and Cedar with its labels (allowed, denied,
// approvable until approved once), trusted hosts, callers outside the trust
// domain, model gateway and tool registry calls to their own hosts only,
// and the private-address grant.
func TestEgressDecisionClass(t *testing.T) {
	s := newSecurity(t)
	ctx := context.Background()
	sc := sessionCall()
	decide := func(ctx context.Context, r egress.Request, want egress.Verdict, reason string) egress.Decision {
		t.Helper()
		d, err := s.DecideEgress(ctx, r)
		if err != nil {
			t.Fatalf("%s:%d: %v", r.Host, r.Port, err)
		}
		if d.Verdict != want || !strings.Contains(d.Reason, reason) {
			t.Fatalf("%s:%d: got %v %q, want %v containing %q", r.Host, r.Port, d.Verdict, d.Reason, want, reason)
		}
		return d
	}

	// A fresh session: its egress list is the agent's host grant.
	decide(ctx, reqAs(sc, "paste.example.net", 443), egress.Allow, "allowed by session-host-grant")
	decide(ctx, reqAs(sc, "evil.test", 443), egress.Deny, `not in the egress list (a pattern without a port allows 80 and 443 only; add "evil.test")`)
	decide(ctx, reqAs(sc, "api.example.com", 8443), egress.Deny, `add "api.example.com:8443"`)
	// Without a session's purpose there is no host grant.
	decide(ctx, egressReq(botS1, "paste.example.net", 443), egress.Deny, "no policy permits it")

	// Untrusted input and private data: the trifecta makes untrusted hosts
	// approvable; a trusted host stays reachable.
	if _, err := s.labels.join(ctx, "bot", "s1", policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.Private}, "test"); err != nil {
		t.Fatal(err)
	}
	d := decide(ctx, reqAs(sc, "paste.example.net", 443), egress.Pending, "required (lethal-trifecta")
	if !strings.Contains(d.Reason, "labels untrusted/private") {
		t.Fatalf("reason does not name the labels: %q", d.Reason)
	}
	if err := s.SetTrustedHosts(ctx, []string{"api.example.com"}, adminID); err != nil {
		t.Fatal(err)
	}
	decide(ctx, reqAs(sc, "api.example.com", 443), egress.Allow, "session-host-grant")

	// The pending approval is alice's to resolve; approved, it lets the
	// same request through once.
	list, err := s.ListApprovals(ctx, Principal{ID: alice, Kind: "user"}, "pending")
	if err != nil || len(list) != 1 || list[0].Resource != `Host::paste.example.net` || list[0].Principal != botS1 {
		t.Fatalf("alice's pending approvals = %+v, %v", list, err)
	}
	if _, err := s.ResolveApproval(ctx, Principal{ID: alice, Kind: "user"}, list[0].ID, true); err != nil {
		t.Fatal(err)
	}
	decide(ctx, reqAs(sc, "paste.example.net", 443), egress.Allow, "approval "+list[0].ID+" by "+alice+" overrides")
	decide(ctx, reqAs(sc, "paste.example.net", 443), egress.Pending, "required")
	if _, err := s.ResolveApproval(ctx, Principal{ID: alice, Kind: "user"}, list[0].ID, true); err == nil {
		t.Fatal("an approval resolved twice")
	}

	// Callers that are not principals of the trust domain are errors,
	// which the proxy turns into denials.
	for _, id := range []string{"spiffe://other.example/agent/bot/session/s1", "anonymous", "spiffe://agentcloud.local/nosuch/x"} {
		c := sc
		c.ID = id
		if _, err := s.DecideEgress(ctx, reqAs(c, "paste.example.net", 443)); err == nil {
			t.Errorf("caller %s: no error", id)
		}
	}

	// A model gateway call reaches exactly its provider; so does the
	// private-address grant, and only when the operator allowed it.
	node := "spiffe://agentcloud.local/node/n1"
	model := ModelEgressCaller(node, modelgw.Outbound{Provider: "local", Dest: "10.0.0.5:8000", AllowPrivate: true}, 0)
	decide(ctx, reqAs(model, "10.0.0.5", 8000), egress.Allow, "model gateway: provider local")
	decide(ctx, reqAs(model, "10.0.0.5", 8001), egress.Deny, "not the destination of provider local")
	if !s.AllowPrivate(ctx, reqAs(model, "10.0.0.5", 8000)) || s.AllowPrivate(ctx, reqAs(model, "10.0.0.6", 8000)) {
		t.Fatal("private grant of a model call is not exactly its destination")
	}
	model.AllowPrivate = false
	if s.AllowPrivate(ctx, reqAs(model, "10.0.0.5", 8000)) {
		t.Fatal("private grant without allow_private")
	}
	if sp := sc; s.AllowPrivate(ctx, reqAs(sp, "10.0.0.5", 8000)) {
		t.Fatal("a session got the private grant")
	}
	if sp := sc; func() bool {
		sp.AllowPrivate, sp.Allow = true, []string{"10.0.0.5:8000"}
		return s.AllowPrivate(ctx, reqAs(sp, "10.0.0.5", 8000))
	}() {
		t.Fatal("a session asking for the private grant got it")
	}

	// A tool registry call reaches its upstream's hosts, from the registry
	// node only.
	reg, err := s.RegistryCaller(&RegistryCall{Upstream: "pets", Hosts: []string{"pets.example.com:443"}})
	if err != nil {
		t.Fatal(err)
	}
	decide(ctx, reqAs(reg, "pets.example.com", 443), egress.Allow, "host of tool upstream pets")
	decide(ctx, reqAs(reg, "evil.test", 443), egress.Deny, "not a destination of registered tool upstream pets")
	forged := reg
	forged.ID = botS1
	decide(ctx, reqAs(forged, "pets.example.com", 443), egress.Deny, "must come from the registry")
}

// TestSessionFetchLabelsClass sends a session's fetch through a real egress
// proxy decided by Security: allowed to its listed host, refused
// elsewhere, and the answer of a host that is neither trusted nor private
// lowers the session's integrity while a private host's raises its
// confidentiality.
func TestSessionFetchLabelsClass(t *testing.T) {
	s := newSecurity(t)
	ctx := context.Background()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	// "upstream.test" resolves to the loopback upstream.
	p, err := egress.New(egress.Config{Decider: s, Secrets: s.SubstituteSecrets, Auditor: egress.AuditorFunc(s.AuditEgress),
		Resolver: loopbackResolver{}, UnsafeAllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	f := s.SessionFetcher(p)
	fetch := func(host string) error {
		req, _ := http.NewRequest("GET", "http://"+host+":"+port+"/", nil)
		resp, err := f.Fetch(ctx, session.Caller{Agent: "bot", Session: "s1", Egress: []string{"upstream.test:" + port, "private.test:" + port}}, req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
		return nil
	}
	if err := fetch("elsewhere.test"); !errors.Is(err, egress.ErrDenied) {
		t.Fatalf("unlisted host: %v", err)
	}
	if l, _ := s.Labels(ctx, "bot", "s1"); l.Integrity != "trusted" {
		t.Fatalf("a refused request moved the labels: %+v", l)
	}
	if err := fetch("upstream.test"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Labels(ctx, "bot", "s1"); l.Integrity != "untrusted" || l.Confidentiality != "public" {
		t.Fatalf("after reading an untrusted host: %+v", l)
	}
	if err := s.SetPrivateHosts(ctx, []string{"private.test"}, adminID); err != nil {
		t.Fatal(err)
	}
	if err := fetch("private.test"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Labels(ctx, "bot", "s1"); l.Confidentiality != "private" {
		t.Fatalf("after reading a private host: %+v", l)
	}
	// Labels only move one way; an administrator resets them.
	if err := s.ResetLabels(ctx, "bot", "s1", adminID); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Labels(ctx, "bot", "s1"); l.Integrity != "trusted" || l.Confidentiality != "public" {
		t.Fatalf("after reset: %+v", l)
	}
}

type loopbackResolver struct{}

func (loopbackResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

func TestHostUID(t *testing.T) {
	for in, want := range map[string]string{"Example.COM": "example.com", "example.com.": "example.com", "10.0.0.1": "10.0.0.1"} {
		if got := HostUID(in); string(got.ID) != want || got.Type != policy.TypeHost {
			t.Errorf("HostUID(%q) = %v, want Host::%s", in, got, want)
		}
	}
}
