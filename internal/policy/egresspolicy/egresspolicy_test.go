package egresspolicy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/internal/egress"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/cedar-policy/cedar-go/types"
)

const sessID = "spiffe://agentcloud.local/agent/bot/session/s1"

func uidSet(uids ...policy.UID) types.Set {
	vs := make([]types.Value, len(uids))
	for i, u := range uids {
		vs[i] = u
	}
	return types.NewSet(vs...)
}

// entities: agent bot may reach api.example.com, paste.example.net and
// 127.0.0.1; session bot/s1 declared api.example.com and 127.0.0.1.
func entities() types.EntityMap {
	ents := types.EntityMap{}
	add := func(uid policy.UID, attrs types.RecordMap) {
		ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	}
	api, paste, local := HostUID("api.example.com"), HostUID("paste.example.net"), HostUID("127.0.0.1")
	bot := policy.NewUID(policy.TypeAgent, "bot")
	add(api, nil)
	add(paste, nil)
	add(local, nil)
	add(bot, types.RecordMap{"hosts": uidSet(api, paste, local)})
	add(policy.NewUID(policy.TypeSession, "bot/s1"), types.RecordMap{"agent": bot, "allowHosts": uidSet(api, local)})
	return ents
}

type labelTable struct {
	mu sync.Mutex
	m  map[string]policy.Labels
}

func (l *labelTable) set(id string, v policy.Labels) { l.mu.Lock(); l.m[id] = v; l.mu.Unlock() }
func (l *labelTable) get(_ context.Context, c egress.Caller, _ identity.Principal) (policy.Labels, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[c.ID]
	if !ok {
		return policy.Labels{}, errors.New("unknown caller")
	}
	return v, nil
}

func newDecider(t *testing.T, labels *labelTable, onApprovable func(context.Context, egress.Request, identity.Principal, policy.Decision) error) *Decider {
	t.Helper()
	eng, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ents := entities()
	d, err := New(Config{
		Engine:       eng,
		Entities:     func() policy.Entities { return ents },
		Labels:       labels.get,
		OnApprovable: onApprovable,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecideEgress(t *testing.T) {
	ctx := context.Background()
	labels := &labelTable{m: map[string]policy.Labels{sessID: {}}}
	var approvals []string
	d := newDecider(t, labels, func(_ context.Context, r egress.Request, p identity.Principal, pd policy.Decision) error {
		if p.Kind != identity.KindSession || p.Agent != "bot" || !pd.Approvable {
			t.Errorf("approval hook got %+v %+v", p, pd)
		}
		approvals = append(approvals, r.Host)
		return nil
	})
	req := func(host string) egress.Request {
		return egress.Request{Caller: egress.Caller{ID: sessID}, Scheme: "https", Method: "GET", Host: host, Port: 443, Path: "/"}
	}
	check := func(host string, want egress.Verdict, wantReason string) {
		t.Helper()
		got, err := d.DecideEgress(ctx, req(host))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if got.Verdict != want || !strings.Contains(got.Reason, wantReason) {
			t.Fatalf("%s: got %v %q, want %v containing %q", host, got.Verdict, got.Reason, want, wantReason)
		}
	}
	check("paste.example.net", egress.Allow, "allowed by session-host-grant")
	check("PASTE.example.net.", egress.Allow, "session-host-grant") // normalised
	check("evil.test", egress.Deny, "no policy permits it")

	labels.set(sessID, policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.Private})
	check("api.example.com", egress.Allow, "session-host-grant") // declared host
	check("paste.example.net", egress.Pending, "approval required by lethal-trifecta (labels untrusted/private)")
	check("evil.test", egress.Deny, "denied by lethal-trifecta")
	if len(approvals) != 1 || approvals[0] != "paste.example.net" {
		t.Fatalf("approvals = %v", approvals)
	}

	// Refusals as errors: unknown caller, foreign trust domain, bad id,
	// labels unavailable, empty host.
	for _, id := range []string{"spiffe://other.example/agent/bot/session/s1", "anonymous", "spiffe://agentcloud.local/agent/bot/session/s2"} {
		r := req("paste.example.net")
		r.Caller.ID = id
		if _, err := d.DecideEgress(ctx, r); err == nil {
			t.Errorf("caller %s: no error", id)
		}
	}
	if _, err := d.DecideEgress(ctx, req("")); err == nil {
		t.Error("empty host: no error")
	}

	// A failing approval hook refuses with an error.
	failing := newDecider(t, labels, func(context.Context, egress.Request, identity.Principal, policy.Decision) error {
		return errors.New("approvals store down")
	})
	if _, err := failing.DecideEgress(ctx, req("paste.example.net")); err == nil || !strings.Contains(err.Error(), "approvals store down") {
		t.Fatalf("hook error = %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("nil engine accepted")
	}
}

func TestThroughProxy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	labels := &labelTable{m: map[string]policy.Labels{sessID: {}}}
	p, err := egress.New(egress.Config{Decider: newDecider(t, labels, nil), UnsafeAllowLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	caller := egress.Caller{ID: sessID}
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", up.URL, nil)
		return p.Do(context.Background(), caller, req)
	}
	resp, err := get()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	// 127.0.0.1 is declared, so the trifecta does not block it; an
	// undeclared caller is refused.
	labels.set(sessID, policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData})
	if resp, err := get(); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	caller.ID = "spiffe://agentcloud.local/agent/bot/session/s9"
	labels.set(caller.ID, policy.Labels{})
	if _, err := get(); !errors.Is(err, egress.ErrDenied) {
		t.Fatalf("unknown session err = %v", err)
	}
}
