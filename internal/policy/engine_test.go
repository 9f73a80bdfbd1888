package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func uidSet(uids ...UID) types.Set {
	vs := make([]types.Value, len(uids))
	for i, u := range uids {
		vs[i] = u
	}
	return types.NewSet(vs...)
}

func testEntities() types.EntityMap {
	alice, bob, carol := NewUID("User", "alice"), NewUID("User", "bob"), NewUID("User", "carol")
	bot := NewUID("Agent", "bot")
	sess := NewUID("Session", "bot/s1")
	ents := types.EntityMap{}
	add := func(uid UID, attrs types.RecordMap, parents ...UID) {
		ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs), Parents: types.NewEntityUIDSet(parents...)}
	}
	add(alice, nil)
	add(bob, nil)
	add(carol, nil, NewUID("Role", "admin"))
	add(NewUID("Tool", "search"), nil)
	add(NewUID("Tool", "shell"), nil)
	add(NewUID("Host", "api.example.com"), types.RecordMap{"name": types.String("api.example.com")})
	add(NewUID("Host", "paste.example.net"), nil)
	add(bot, types.RecordMap{
		"owner": alice,
		"tools": uidSet(NewUID("Tool", "search")),
		"hosts": uidSet(NewUID("Host", "api.example.com"), NewUID("Host", "paste.example.net")),
	})
	add(sess, types.RecordMap{"owner": alice, "agent": bot, "allowHosts": uidSet(NewUID("Host", "api.example.com"))})
	add(NewUID("Sandbox", "x1"), types.RecordMap{"session": sess})
	add(NewUID("Sandbox", "x2"), nil)
	return ents
}

func TestDefaultPolicies(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ents := testEntities()
	sess := NewUID("Session", "bot/s1")
	risky := Labels{}.RaiseConfidentiality(Private).LowerIntegrity(Untrusted)
	tests := []struct {
		name       string
		req        Request
		allowed    bool
		approvable bool
		reasons    []string
	}{
		{"admin anything", Request{NewUID("Admin", "root"), "policy.apply", NewUID("Platform", "agentcloud"), Labels{}, nil}, true, false, []string{"admin-all"}},
		{"admin role", Request{NewUID("User", "carol"), "secret.read", NewUID("Secret", "k"), Labels{}, nil}, true, false, []string{"admin-role"}},
		{"owner deploys", Request{NewUID("User", "alice"), "agent.deploy", NewUID("Agent", "bot"), Labels{}, nil}, true, false, []string{"owner-all"}},
		{"non-owner denied", Request{NewUID("User", "bob"), "agent.deploy", NewUID("Agent", "bot"), Labels{}, nil}, false, false, nil},
		{"granted tool", Request{sess, "tool.call", NewUID("Tool", "search"), Labels{}, nil}, true, false, []string{"session-tool-grant"}},
		{"ungranted tool", Request{sess, "tool.call", NewUID("Tool", "shell"), Labels{}, nil}, false, false, nil},
		{"clean session fetches granted host", Request{sess, "egress.fetch", NewUID("Host", "paste.example.net"), Labels{}, nil}, true, false, []string{"session-host-grant"}},
		{"trifecta blocks host outside allowlist", Request{sess, "egress.fetch", NewUID("Host", "paste.example.net"), risky, nil}, false, true, []string{"lethal-trifecta"}},
		{"trifecta secret too", Request{sess, "egress.fetch", NewUID("Host", "paste.example.net"), risky.RaiseConfidentiality(SecretData), nil}, false, true, []string{"lethal-trifecta"}},
		{"trifecta allows declared host", Request{sess, "egress.fetch", NewUID("Host", "api.example.com"), risky, nil}, true, false, []string{"session-host-grant"}},
		{"private but trusted is fine", Request{sess, "egress.fetch", NewUID("Host", "paste.example.net"), Labels{Confidentiality: Private}, nil}, true, false, []string{"session-host-grant"}},
		{"untrusted but public is fine", Request{sess, "egress.fetch", NewUID("Host", "paste.example.net"), Labels{Integrity: Untrusted}, nil}, true, false, []string{"session-host-grant"}},
		{"ungranted host not approvable", Request{sess, "egress.fetch", NewUID("Host", "evil.test"), risky, nil}, false, false, []string{"lethal-trifecta"}},
		{"session own sandbox", Request{sess, "sandbox.exec", NewUID("Sandbox", "x1"), Labels{}, nil}, true, false, []string{"session-own-sandbox"}},
		{"session other sandbox", Request{sess, "sandbox.exec", NewUID("Sandbox", "x2"), Labels{}, nil}, false, false, nil},
		{"session own state", Request{sess, "state.write", sess, Labels{}, nil}, true, false, []string{"session-own-state"}},
		{"extra context kept, labels win", Request{sess, "egress.fetch", NewUID("Host", "paste.example.net"), risky, types.RecordMap{"integrity": types.String("trusted"), "x": types.Long(1)}}, false, true, []string{"lethal-trifecta"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), ents, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.allowed || d.Approvable != tc.approvable || !slices.Equal(d.Reasons, tc.reasons) {
				t.Fatalf("got %+v, want allowed=%v approvable=%v reasons=%v", d, tc.allowed, tc.approvable, tc.reasons)
			}
		})
	}
}

// TestTrifectaChannelsClass: calls into other sessions and deploys are
// outbound channels for the lethal-trifecta rule, for sessions and for their
// sandboxes alike, whatever permits them; model calls with private data go
// only to trusted providers.
func TestTrifectaChannelsClass(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ents := testEntities()
	sess, sbx := NewUID("Session", "bot/s1"), NewUID("Sandbox", "x1")
	other, agent := NewUID("Session", "peer/s2"), NewUID("Agent", "peer")
	ents[agent] = types.Entity{UID: agent}
	ents[other] = types.Entity{UID: other, Attributes: types.NewRecord(types.RecordMap{"agent": agent})}
	trusted, untrusted := NewUID("ModelProvider", "local"), NewUID("ModelProvider", "cloud")
	ents[trusted] = types.Entity{UID: trusted, Attributes: types.NewRecord(types.RecordMap{"trusted": types.True})}
	ents[untrusted] = types.Entity{UID: untrusted}
	// A user policy grants the calls, so only the forbid can refuse them.
	if err := e.Apply(context.Background(), 1, []byte(`permit (principal, action in [Action::"session.call", Action::"agent.deploy"], resource);`)); err != nil {
		t.Fatal(err)
	}
	risky := Labels{Integrity: Untrusted, Confidentiality: Private}
	for _, p := range []UID{sess, sbx} {
		for _, act := range []string{"session.call", "agent.deploy"} {
			res := other
			if act == "agent.deploy" {
				res = agent
			}
			for _, l := range []Labels{{}, {Integrity: Untrusted}, {Confidentiality: SecretData}, risky, risky.RaiseConfidentiality(SecretData)} {
				d, err := e.Decide(context.Background(), ents, Request{Principal: p, Action: act, Resource: res, Labels: l})
				if err != nil {
					t.Fatal(err)
				}
				want := !l.Trifecta()
				if d.Allowed != want || (!want && (!slices.Contains(d.Reasons, "lethal-trifecta-call") || d.Approvable)) {
					t.Errorf("%s %s with %s: %+v, want allowed=%v", p, act, l, d, want)
				}
			}
		}
	}
	for _, tc := range []struct {
		labels   Labels
		provider UID
		allowed  bool
	}{
		{Labels{}, untrusted, true},
		{Labels{Integrity: Untrusted}, untrusted, true},
		{Labels{Confidentiality: Private}, untrusted, false},
		{Labels{Confidentiality: SecretData}, untrusted, false},
		{Labels{Confidentiality: SecretData, Integrity: Untrusted}, trusted, true},
		{Labels{Confidentiality: Private}, trusted, true},
	} {
		d, err := e.Decide(context.Background(), ents, Request{Principal: sess, Action: "model.invoke", Resource: tc.provider, Labels: tc.labels})
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed != tc.allowed || (!tc.allowed && !slices.Contains(d.Reasons, "private-data-untrusted-model")) {
			t.Errorf("model.invoke %s with %s: %+v, want allowed=%v", tc.provider, tc.labels, d, tc.allowed)
		}
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	e, _ := New(Config{})
	ents := testEntities()
	bobCallsShell := Request{Principal: NewUID("User", "bob"), Action: "tool.call", Resource: NewUID("Tool", "shell")}
	if d, _ := e.Decide(ctx, ents, bobCallsShell); d.Allowed {
		t.Fatal("allowed before user policy")
	}
	v1 := []byte(`@id("bob-shell")
permit (principal == User::"bob", action == Action::"tool.call", resource == Tool::"shell");`)
	if err := e.Apply(ctx, 1, v1); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Decide(ctx, ents, bobCallsShell); !d.Allowed || !slices.Equal(d.Reasons, []string{"user.bob-shell"}) {
		t.Fatalf("after v1: %+v", d)
	}
	// Same version: cached, the text is not even parsed.
	if err := e.Apply(ctx, 1, []byte("this is not cedar")); err != nil {
		t.Fatalf("same version re-applied: %v", err)
	}
	if err := e.Apply(ctx, 0, v1); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("stale err = %v", err)
	}
	// Parse error: line and column.
	bad := []byte("permit (principal, action, resource);\n\npermit (principal action, resource);\n")
	err := e.Apply(ctx, 2, bad)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 3 || pe.Column == 0 {
		t.Fatalf("parse err = %v (%+v)", err, pe)
	}
	// Validation errors: unknown action, unknown attribute, wrong type.
	for _, src := range []string{
		`permit (principal, action == Action::"agent.destroy", resource);`,
		`permit (principal is Session, action == Action::"tool.call", resource is Tool) when { principal.nosuch == 1 };`,
		`permit (principal, action, resource) when { context.integrity == 3 };`,
		`permit (principal is Widget, action, resource);`,
	} {
		err := e.Apply(ctx, 2, []byte("\n"+src))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Line != 2 {
			t.Errorf("%s: err = %v", src, err)
		}
	}
	if e.Version() != 1 {
		t.Fatalf("version = %d after failed applies", e.Version())
	}
	// A user approvable forbid.
	v2 := []byte(`@id("no-shell-untrusted")
@approvable("true")
forbid (principal, action == Action::"tool.call", resource == Tool::"shell") when { context.integrity == "untrusted" };
@id("bob-shell")
permit (principal == User::"bob", action == Action::"tool.call", resource == Tool::"shell");`)
	if err := e.Apply(ctx, 2, v2); err != nil {
		t.Fatal(err)
	}
	req := bobCallsShell
	req.Labels = Labels{Integrity: Untrusted}
	if d, _ := e.Decide(ctx, ents, req); d.Allowed || !d.Approvable || !slices.Equal(d.Reasons, []string{"user.no-shell-untrusted"}) {
		t.Fatalf("v2 untrusted: %+v", d)
	}
	if err := e.Apply(ctx, 3, []byte(`@approvable("true") permit (principal, action, resource);`)); err == nil || !strings.Contains(err.Error(), "approvable") {
		t.Fatalf("approvable permit err = %v", err)
	}
	if err := e.Apply(ctx, 3, []byte(`@id("a") permit (principal, action, resource); @id("a") permit (principal, action, resource);`)); err == nil {
		t.Fatal("duplicate ids accepted")
	}
}

func TestLabels(t *testing.T) {
	var l Labels
	if l.Integrity != Trusted || l.Confidentiality != Public || l.Trifecta() {
		t.Fatal("zero labels")
	}
	l = l.RaiseConfidentiality(SecretData)
	if l.RaiseConfidentiality(Public).Confidentiality != SecretData || l.RaiseConfidentiality(Private).Confidentiality != SecretData {
		t.Fatal("confidentiality fell")
	}
	l = l.LowerIntegrity(Untrusted)
	if l.LowerIntegrity(Trusted).Integrity != Untrusted {
		t.Fatal("integrity rose")
	}
	if !l.Trifecta() || l.String() != "untrusted/secret" {
		t.Fatalf("labels %v", l)
	}
	if j := (Labels{Confidentiality: Private}).Join(Labels{Integrity: Untrusted}); j != (Labels{Untrusted, Private}) {
		t.Fatalf("join = %v", j)
	}
	if l.RaiseConfidentiality(Confidentiality(9)).Confidentiality != SecretData {
		t.Fatal("out-of-range raise")
	}
	for _, s := range []string{"public", "private", "secret"} {
		c, err := ParseConfidentiality(s)
		if err != nil || c.String() != s {
			t.Fatal(s)
		}
	}
	for _, s := range []string{"trusted", "untrusted"} {
		i, err := ParseIntegrity(s)
		if err != nil || i.String() != s {
			t.Fatal(s)
		}
	}
	if _, err := ParseIntegrity("meh"); err == nil {
		t.Fatal("bad integrity parsed")
	}
	r := contextRecord(nil, Labels{Untrusted, Private}, nil)
	if v, _ := r.Get("integrity"); v != types.String("untrusted") {
		t.Fatalf("context integrity %v", v)
	}
	if v, _ := r.Get("confidentiality"); v != types.String("private") {
		t.Fatalf("context confidentiality %v", v)
	}
}

func TestParse(t *testing.T) {
	ps, err := Parse(DefaultPolicies())
	if err != nil {
		t.Fatal(err)
	}
	var approvable []string
	for _, p := range ps {
		if p.Approvable {
			approvable = append(approvable, p.ID)
		}
	}
	if len(ps) < 7 || !slices.Equal(approvable, []string{"lethal-trifecta", "lethal-trifecta-sandbox"}) {
		t.Fatalf("parsed %+v", ps)
	}
	if err := Validate(DefaultPolicies()); err != nil {
		t.Fatal(err)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add(string(DefaultPolicies()))
	f.Add(`permit (principal, action, resource);`)
	f.Add(`@id("x") @approvable("true") forbid (principal is Session, action == Action::"egress.fetch", resource is Host) when { context.integrity == "untrusted" };`)
	f.Add(`permit (principal in Role::"admin", action in [Action::"a", Action::"b"], resource) unless { resource has owner };`)
	f.Add("permit (principal\n")
	f.Fuzz(func(t *testing.T, src string) {
		ps, err := Parse([]byte(src))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		for _, p := range ps {
			if p.ID == "" {
				t.Fatal("empty id")
			}
		}
		_ = Validate([]byte(src)) // must not panic
	})
}

func TestPrincipalUID(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("agentcloud.local")
	tests := map[string]UID{
		"spiffe://agentcloud.local/admin/root":           NewUID("Admin", "root"),
		"spiffe://agentcloud.local/user/alice":           NewUID("User", "alice"),
		"spiffe://agentcloud.local/agent/bot":            NewUID("Agent", "bot"),
		"spiffe://agentcloud.local/agent/bot/session/s1": NewUID("Session", "bot/s1"),
		"spiffe://agentcloud.local/sandbox/x1":           NewUID("Sandbox", "x1"),
		"spiffe://agentcloud.local/node/n1":              NewUID("Node", "n1"),
	}
	for id, want := range tests {
		p, err := identity.ParsePrincipal(td, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := PrincipalUID(p); got != want {
			t.Errorf("%s → %v, want %v", id, got, want)
		}
	}
}

// TestRateAndHourContext: a policy on the request rate and the hour
// validates against the schema and decides on what the caller supplies.
func TestRateAndHourContext(t *testing.T) {
	ctx := context.Background()
	e, _ := New(Config{})
	src := []byte(`@id("bob-shell-calm")
permit (principal == User::"bob", action == Action::"tool.call", resource == Tool::"shell")
when { context has rate && context.rate <= 100 && context has hour && context.hour >= 8 && context.hour < 18 };`)
	if err := e.Apply(ctx, 1, src); err != nil {
		t.Fatalf("rate/hour policy refused by the schema: %v", err)
	}
	req := func(rate, hour int64) Request {
		return Request{Principal: NewUID("User", "bob"), Action: "tool.call", Resource: NewUID("Tool", "shell"),
			Context: types.RecordMap{"rate": types.Long(rate), "hour": types.Long(hour)}}
	}
	for _, c := range []struct {
		rate, hour int64
		want       bool
	}{{5, 9, true}, {500, 9, false}, {5, 3, false}} {
		if d, err := e.Decide(ctx, testEntities(), req(c.rate, c.hour)); err != nil || d.Allowed != c.want {
			t.Errorf("rate %d hour %d: %+v %v, want allowed=%v", c.rate, c.hour, d, err, c.want)
		}
	}
	// Without the keys (a caller outside the daemon) the permit does not match.
	plain := Request{Principal: NewUID("User", "bob"), Action: "tool.call", Resource: NewUID("Tool", "shell")}
	if d, _ := e.Decide(ctx, testEntities(), plain); d.Allowed {
		t.Fatalf("allowed without rate/hour: %+v", d)
	}
}
