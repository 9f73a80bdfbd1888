package security

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/modelgw"
	"github.com/agentcloud/agentcloud/internal/session"
)

// callerLog keeps the egress.Caller of every request the decider and the
// auditor saw, around the real Security.
type callerLog struct {
	mu      sync.Mutex
	decided []egress.Caller
	audited []egress.Caller
}

func (l *callerLog) last(list *[]egress.Caller) (egress.Caller, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(*list) == 0 {
		return egress.Caller{}, 0
	}
	return (*list)[len(*list)-1], len(*list)
}

// TestEgressCallerClass sends one request of every kind of egress caller
// built in this package (a session's fetch, a sandbox's proxied request, a
// model gateway call, a tool registry call) through a real egress proxy
// decided, filled in and audited by Security, to a loopback upstream: the
// decider and the auditor receive the caller's ID, purpose, owner,
// session and egress list as built, and the audit record carries its
// principal, session, purpose and target.
func TestEgressCallerClass(t *testing.T) {
	s := newSecurity(t)
	ctx := context.Background()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	var log callerLog
	p, err := egress.New(egress.Config{
		Decider: egress.DeciderFunc(func(ctx context.Context, r egress.Request) (egress.Decision, error) {
			log.mu.Lock()
			log.decided = append(log.decided, r.Caller)
			log.mu.Unlock()
			return s.DecideEgress(ctx, r)
		}),
		Auditor: egress.AuditorFunc(func(ctx context.Context, ev egress.Event) {
			log.mu.Lock()
			log.audited = append(log.audited, ev.Request.Caller)
			log.mu.Unlock()
			s.AuditEgress(ctx, ev)
		}),
		Secrets: s.SubstituteSecrets, AllowPrivate: s.AllowPrivate,
		Resolver: loopbackResolver{}, UnsafeAllowLoopback: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The sandbox's proxy listener, bound to its caller as the daemon does.
	sbID := "spiffe://agentcloud.local/sandbox/sb1"
	sandbox := SandboxRecord{ID: "sb1", Owner: alice, Agent: "bot", Session: "s1", Egress: []string{"sbx.test:" + port}, Secrets: []string{"tok"}}
	sbProxy := httptest.NewServer(p.Handler(sandbox.EgressCaller(sbID)))
	defer sbProxy.Close()
	pu, _ := url.Parse(sbProxy.URL)
	sbClient := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	defer sbClient.CloseIdleConnections()

	node := "spiffe://agentcloud.local/node/n1"
	model := ModelEgressCaller(node, modelgw.Outbound{Provider: "local", Dest: "model.test:" + port, Secret: "key",
		Caller: modelgw.Caller{Agent: "bot", Session: "s1", Principal: botS1}}, time.Minute)
	reg, err := s.RegistryCaller(&RegistryCall{Upstream: "pets", Hosts: []string{"pets.test:" + port}, Secret: "cred"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(host string) *http.Request {
		req, _ := http.NewRequest("GET", "http://"+host+":"+port+"/", nil)
		return req
	}
	send := func(resp *http.Response, err error) error {
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	cases := []struct {
		name    string
		do      func() error
		want    egress.Caller
		session string
		target  string
	}{
		{"session fetch", func() error {
			return send(s.SessionFetcher(p).Fetch(ctx, session.Caller{Agent: "bot", Session: "s1", Egress: []string{"upstream.test:" + port}}, get("upstream.test")))
		}, egress.Caller{ID: botS1, Purpose: egress.PurposeSession, Agent: "bot", Session: "s1", Owner: alice,
			Allow: []string{"upstream.test:" + port}}, "bot/s1", ""},
		{"sandbox proxy", func() error { return send(sbClient.Get("http://sbx.test:" + port + "/")) },
			egress.Caller{ID: sbID, Purpose: egress.PurposeSandbox, Agent: "bot", Session: "s1", Sandbox: "sb1", Owner: alice,
				Allow: []string{"sbx.test:" + port}, Secrets: []string{"tok"}}, "bot/s1", ""},
		{"model gateway", func() error { return send(p.Do(ctx, model, get("model.test"))) },
			egress.Caller{ID: node, Purpose: egress.PurposeModel, Agent: "bot", Session: "s1", Allow: []string{"model.test:" + port},
				Secrets: []string{"key"}, Target: "local", OnBehalfOf: botS1, Timeout: time.Minute}, "bot/s1", "local"},
		{"tool registry", func() error { return send(p.Do(ctx, reg, get("pets.test"))) },
			egress.Caller{ID: "spiffe://agentcloud.local/node/" + RegistryNode, Purpose: egress.PurposeRegistry,
				Allow: []string{"pets.test:" + port}, Secrets: []string{"cred"}, Target: "pets"}, "", "pets"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, nd := log.last(&log.decided)
			_, na := log.last(&log.audited)
			err := c.do()
			if c.want.Purpose != egress.PurposeSandbox && err != nil { // a sandbox's refusal is an HTTP answer
				t.Fatalf("request: %v", err)
			}
			for what, list := range map[string]*[]egress.Caller{"decider": &log.decided, "auditor": &log.audited} {
				got, n := log.last(list)
				if n == map[string]int{"decider": nd, "auditor": na}[what] {
					t.Fatalf("the %s saw no request", what)
				}
				if d := diffCaller(got, c.want); d != "" {
					t.Errorf("the %s saw %s", what, d)
				}
			}
			evs, _, err := s.Audit().List(ctx, audit.Filter{Type: audit.TypeEgress, Limit: 1000})
			if err != nil || len(evs) == 0 {
				t.Fatalf("audit: %d records, %v", len(evs), err)
			}
			ev := evs[len(evs)-1]
			if ev.Principal != c.want.ID || ev.Session != c.session || ev.Detail["purpose"] != string(c.want.Purpose) ||
				(c.target != "" && ev.Detail["target"] != c.target) || (c.want.Sandbox != "" && ev.Detail["sandbox"] != c.want.Sandbox) {
				t.Errorf("audit record %+v: want principal %s, session %q, purpose %s, target %q", ev, c.want.ID, c.session, c.want.Purpose, c.target)
			}
		})
	}
}

// diffCaller describes how got differs from want ("" when it does not),
// ignoring the Substituted hook, which is compared by presence only.
func diffCaller(got, want egress.Caller) string {
	var d []string
	f := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	f("ID", got.ID, want.ID)
	f("Purpose", got.Purpose, want.Purpose)
	f("Agent", got.Agent, want.Agent)
	f("Session", got.Session, want.Session)
	f("Sandbox", got.Sandbox, want.Sandbox)
	f("Owner", got.Owner, want.Owner)
	f("Target", got.Target, want.Target)
	f("OnBehalfOf", got.OnBehalfOf, want.OnBehalfOf)
	f("Timeout", got.Timeout, want.Timeout)
	f("AllowPrivate", got.AllowPrivate, want.AllowPrivate)
	if !slices.Equal(got.Allow, want.Allow) {
		d = append(d, fmt.Sprintf("Allow %v, want %v", got.Allow, want.Allow))
	}
	if !slices.Equal(got.Secrets, want.Secrets) {
		d = append(d, fmt.Sprintf("Secrets %v, want %v", got.Secrets, want.Secrets))
	}
	if (got.Purpose == egress.PurposeRegistry) != (got.Substituted != nil) {
		d = append(d, "Substituted hook set for a caller other than the registry's, or missing")
	}
	return strings.Join(d, "; ")
}
