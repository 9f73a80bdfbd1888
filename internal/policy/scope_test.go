package policy

import (
	"context"
	"slices"
	"testing"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// scopeTestPolicies exercises every scope form. They are installed without
// schema validation (action groups are not in the schema) to check the
// prefilter against plain cedar.Authorize.
const scopeTestPolicies = `
@id("p-eq") permit (principal == User::"bob", action == Action::"tool.call", resource == Tool::"shell");
@id("p-in") permit (principal in Role::"ops", action in [Action::"sandbox.exec", Action::"sandbox.read"], resource);
@id("p-isin") permit (principal is User in Role::"ops", action, resource is Sandbox in Session::"bot/s1");
@id("p-group") permit (principal is Session, action in Action::"readers", resource);
@id("p-res-in") permit (principal, action == Action::"agent.read", resource in Agent::"bot");
@id("f-all") forbid (principal, action, resource) when { context has deny && context.deny };
@id("f-err") forbid (principal is Session, action == Action::"state.write", resource) when { principal.nosuch == 1 };
@id("p-err") permit (principal is User, action == Action::"state.read", resource) when { principal.nosuch == 1 };
@id("f-appr") @approvable("true") forbid (principal is User, action == Action::"tool.call", resource) when { context.integrity == "untrusted" };
`

func TestScopePrefilterMatchesCedar(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	user, err := parse("user.cedar", "user.", []byte(scopeTestPolicies))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := e.build(1, user)
	if err != nil {
		t.Fatal(err)
	}
	e.cur.Store(snap)

	ref := cedar.NewPolicySet()
	for _, list := range [][]compiled{e.defaults, user} {
		for _, c := range list {
			ref.Add(c.id, c.policy)
		}
	}

	ents := testEntities()
	bob := NewUID("User", "bob")
	ents[bob] = types.Entity{UID: bob, Parents: types.NewEntityUIDSet(NewUID("Role", "ops"))}
	// Action::"session.read" is in the group Action::"readers".
	ents[NewUID("Action", "session.read")] = types.Entity{UID: NewUID("Action", "session.read"), Parents: types.NewEntityUIDSet(NewUID("Action", "readers"))}

	principals := []UID{bob, NewUID("User", "alice"), NewUID("User", "carol"), NewUID("Admin", "root"), NewUID("Session", "bot/s1"), NewUID("Sandbox", "x1"), NewUID("Unknown", "?")}
	resources := []UID{NewUID("Tool", "shell"), NewUID("Tool", "search"), NewUID("Sandbox", "x1"), NewUID("Sandbox", "x2"), NewUID("Agent", "bot"), NewUID("Session", "bot/s1"), NewUID("Host", "paste.example.net"), Platform}
	actions := []string{"tool.call", "sandbox.exec", "sandbox.read", "session.read", "agent.read", "state.write", "state.read", "egress.fetch", "policy.apply"}
	labels := []Labels{{}, {Integrity: Untrusted, Confidentiality: Private}}
	extras := []types.RecordMap{nil, {"deny": types.True}}
	n := 0
	for _, p := range principals {
		for _, a := range actions {
			for _, r := range resources {
				for _, l := range labels {
					for _, x := range extras {
						req := Request{Principal: p, Action: a, Resource: r, Labels: l, Context: x}
						got, err := e.Decide(ctx, ents, req)
						if err != nil {
							t.Fatal(err)
						}
						creq := cedar.Request{Principal: p, Action: NewUID("Action", a), Resource: r, Context: contextRecord(nil, l, x)}
						ok, diag := cedar.Authorize(ref, ents, creq)
						wantReasons := []string{}
						for _, rr := range diag.Reasons {
							wantReasons = append(wantReasons, string(rr.PolicyID))
						}
						erroredForbid := false
						for _, er := range diag.Errors {
							if pol := ref.Get(er.PolicyID); pol.Effect() == cedar.Forbid {
								erroredForbid = true
							}
						}
						wantAllowed := bool(ok) && !erroredForbid
						gotReasons := slices.Clone(got.Reasons)
						if erroredForbid {
							// Engine lists errored forbids as reasons too.
							gotReasons = slices.DeleteFunc(gotReasons, func(id string) bool {
								for _, er := range diag.Errors {
									if string(er.PolicyID) == id {
										return true
									}
								}
								return false
							})
							if bool(ok) {
								wantReasons = nil // reference allowed; engine denied on the errored forbid
							}
						}
						slices.Sort(gotReasons)
						slices.Sort(wantReasons)
						if got.Allowed != wantAllowed || !slices.Equal(gotReasons, wantReasons) || len(got.Errors) != len(diag.Errors) {
							t.Errorf("%v %s %v %v %v: got %+v, cedar ok=%v reasons=%v errors=%d", p, a, r, l, x, got, ok, wantReasons, len(diag.Errors))
						}
						n++
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d cases", n)
	}
	if !slices.Contains(mustDecide(t, e, ents, Request{Principal: NewUID("Session", "bot/s1"), Action: "session.read", Resource: NewUID("Agent", "bot")}).Reasons, "user.p-group") {
		t.Fatal("action group policy not applied")
	}
}

func mustDecide(t *testing.T, e *Engine, ents Entities, req Request) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), ents, req)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDecideErrors(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Validated policies can still error on entity data that does not fit
	// the schema (a Session without its required agent attribute).
	src := []byte(`@id("no-evil")
forbid (principal is Session, action == Action::"tool.call", resource) when { principal.agent == Agent::"evil" };
@id("appr")
@approvable("true")
forbid (principal is Session, action == Action::"state.read", resource) when { context.integrity == "untrusted" };
@id("read-own-agent")
permit (principal is Session, action == Action::"state.read", resource is Agent) when { principal.agent == resource };`)
	if err := e.Apply(ctx, 1, src); err != nil {
		t.Fatal(err)
	}
	ents := testEntities()
	broken := NewUID("Session", "bot/broken")
	ents[broken] = types.Entity{UID: broken}
	ents[NewUID("Tool", "search")] = types.Entity{UID: NewUID("Tool", "search"), Attributes: types.NewRecord(types.RecordMap{"owner": NewUID("User", "alice")})}

	// An errored forbid denies, is named in Reasons, and is never approvable.
	d := mustDecide(t, e, ents, Request{Principal: broken, Action: "tool.call", Resource: NewUID("Tool", "search")})
	if d.Allowed || d.Approvable || !slices.Equal(d.Reasons, []string{"user.no-evil"}) || len(d.Errors) == 0 {
		t.Fatalf("errored forbid: %+v", d)
	}
	// Only the approvable forbid matched but the permit errored: not approvable.
	d = mustDecide(t, e, ents, Request{Principal: broken, Action: "state.read", Resource: NewUID("Agent", "bot"), Labels: Labels{Integrity: Untrusted}})
	if d.Allowed || d.Approvable || !slices.Equal(d.Reasons, []string{"user.appr"}) || len(d.Errors) != 1 {
		t.Fatalf("errored permit under approvable forbid: %+v", d)
	}
	// A healthy session: approvable.
	d = mustDecide(t, e, ents, Request{Principal: NewUID("Session", "bot/s1"), Action: "state.read", Resource: NewUID("Agent", "bot"), Labels: Labels{Integrity: Untrusted}})
	if d.Allowed || !d.Approvable || !slices.Equal(d.Reasons, []string{"user.appr"}) || len(d.Errors) != 0 {
		t.Fatalf("approvable: %+v", d)
	}
	// Trusted: allowed by the permit.
	d = mustDecide(t, e, ents, Request{Principal: NewUID("Session", "bot/s1"), Action: "state.read", Resource: NewUID("Agent", "bot")})
	if !d.Allowed || !slices.Equal(d.Reasons, []string{"user.read-own-agent"}) {
		t.Fatalf("allowed: %+v", d)
	}
}

func TestDecideConcurrentWithApply(t *testing.T) {
	ctx := context.Background()
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ents := testEntities()
	req := Request{Principal: NewUID("Session", "bot/s1"), Action: "tool.call", Resource: NewUID("Tool", "search")}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := uint64(1); v <= 50; v++ {
			if err := e.Apply(ctx, v, []byte(`@id("x") permit (principal is User, action == Action::"agent.read", resource);`)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 2000; i++ {
		if d := mustDecide(t, e, ents, req); !d.Allowed {
			t.Fatalf("denied: %+v", d)
		}
	}
	<-done
}
