package policy

import (
	"context"
	"slices"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// contextUseCases are policy sets that read the request context in every
// way Cedar allows, with the keys a pruned context must keep.
var contextUseCases = []struct {
	name  string
	src   string
	keeps []string // extra keys kept ("*": the whole context is used)
}{
	{"none", `@id("p") permit (principal, action, resource);`, nil},
	{"labels only", `@id("p") permit (principal, action, resource) when { context.integrity == "trusted" };`, nil},
	{"rate by dot", `@id("p") permit (principal, action, resource);
@id("f") forbid (principal, action, resource) when { context has rate && context.rate > 2 };`, []string{"rate"}},
	{"rate by index", `@id("p") permit (principal, action, resource);
@id("f") forbid (principal, action, resource) when { context has "rate" && context["rate"] > 2 };`, []string{"rate"}},
	{"has only", `@id("p") permit (principal, action, resource) unless { context has hour };`, []string{"hour"}},
	{"hour in unless", `@id("p") permit (principal, action, resource) unless { context has hour && context.hour == 5 };`, []string{"hour"}},
	{"whole by equality", `@id("p") permit (principal, action, resource);
@id("f") forbid (principal, action, resource) when { context == {integrity: "trusted", confidentiality: "public"} };`, []string{"*"}},
	{"whole in a set", `@id("p") permit (principal, action, resource) when { [context].contains({integrity: "trusted", confidentiality: "public"}) };`, []string{"*"}},
	{"whole in a record", `@id("p") permit (principal, action, resource) when { {c: context}.c has rate };`, []string{"*"}},
	{"whole via if", `@id("p") permit (principal, action, resource) when { (if true then context else {}) has hour };`, []string{"*"}},
	{"errors on rate", `@id("p") permit (principal, action, resource);
@id("f") @approvable("true") forbid (principal, action, resource) when { context.rate.nosuch == 1 };`, []string{"rate"}},
	{"string named context", `@id("p") permit (principal, action, resource) when { "context" != "rate" && context.hour < 30 };`, []string{"hour"}},
}

// TestContextPruningClass checks that leaving out the context keys no
// policy can observe changes no decision: for each way of reading the
// context, every request is decided the same with the pruned context as
// with the whole one (allowed, reasons, errors, approvable), and only keys
// a policy names (or all, when a policy uses the record itself) are kept.
func TestContextPruningClass(t *testing.T) {
	ctx := context.Background()
	ents := testEntities()
	extras := []types.RecordMap{nil, {"rate": types.Long(1)}, {"rate": types.Long(3), "hour": types.Long(5)},
		{"hour": types.Long(6)}, {"hour": types.Long(5), "rate": types.Long(1), "other": types.True}}
	labels := []Labels{{}, {Integrity: Untrusted, Confidentiality: Private}}
	for _, tc := range contextUseCases {
		t.Run(tc.name, func(t *testing.T) {
			e, pruned, whole := pruningEngines(t, tc.src)
			for _, k := range []string{"rate", "hour", "other"} {
				want := slices.Contains(tc.keeps, "*") || slices.Contains(tc.keeps, k)
				if got := pruned.ctxUse.uses(k); got != want {
					t.Errorf("uses(%q) = %v, want %v (%v)", k, got, want, &pruned.ctxUse)
				}
			}
			for _, x := range extras {
				for _, l := range labels {
					req := Request{Principal: NewUID("User", "alice"), Action: "agent.read", Resource: NewUID("Agent", "bot"), Labels: l, Context: x}
					e.cur.Store(pruned)
					got, err := e.Decide(ctx, ents, req)
					if err != nil {
						t.Fatal(err)
					}
					e.cur.Store(whole)
					want, err := e.Decide(ctx, ents, req)
					if err != nil {
						t.Fatal(err)
					}
					if !sameDecision(got, want) {
						t.Errorf("context %v labels %v: pruned %+v, whole %+v", x, l, got, want)
					}
				}
			}
		})
	}
}

// TestContextRecordUnusedAllocsNothing: a request whose extra keys no
// policy reads gets the labels' cached record.
func TestContextRecordUnusedAllocsNothing(t *testing.T) {
	var u contextUse
	x := types.RecordMap{"rate": types.Long(7), "hour": types.Long(3)}
	if n := testing.AllocsPerRun(100, func() { contextRecord(&u, Labels{Integrity: Untrusted}, x) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	r := contextRecord(&u, Labels{Integrity: Untrusted}, x)
	if v, _ := r.Get("integrity"); v != types.String("untrusted") || r.Len() != 2 {
		t.Fatalf("record %v", r)
	}
}

// newPlainEngine is an Engine with the defaults and no user policies.
func newPlainEngine(t testing.TB) *Engine {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pruningEngines returns an engine and two snapshots of src (parsed
// without schema validation): one that prunes the context and one that
// keeps it whole.
func pruningEngines(t testing.TB, src string) (*Engine, *snapshot, *snapshot) {
	e := newPlainEngine(t)
	user, err := parse("user.cedar", "user.", []byte(src))
	if err != nil {
		t.Skip(err) // only reached from the fuzzer: the table's sets parse
	}
	pruned, err := e.build(1, user)
	if err != nil {
		t.Skip(err)
	}
	whole, err := e.build(1, user)
	if err != nil {
		t.Fatal(err)
	}
	whole.ctxUse.whole = true
	return e, pruned, whole
}

func sameDecision(a, b Decision) bool {
	return a.Allowed == b.Allowed && a.Approvable == b.Approvable && slices.Equal(a.Reasons, b.Reasons) && slices.Equal(a.Errors, b.Errors)
}

// FuzzContextPruning: for any policy text that parses, a pruned context
// decides as the whole one does.
func FuzzContextPruning(f *testing.F) {
	for _, tc := range contextUseCases {
		f.Add(tc.src, int64(3), int64(5))
	}
	e := newPlainEngine(f)
	f.Fuzz(func(t *testing.T, src string, rate, hour int64) {
		if len(src) > 4096 {
			return
		}
		user, err := parse("user.cedar", "user.", []byte(src))
		if err != nil {
			return
		}
		pruned, err := e.build(1, user)
		if err != nil {
			return
		}
		whole, _ := e.build(1, user)
		whole.ctxUse.whole = true
		ents := testEntities()
		req := Request{Principal: NewUID("User", "alice"), Action: "agent.read", Resource: NewUID("Agent", "bot"),
			Context: types.RecordMap{"rate": types.Long(rate), "hour": types.Long(hour)}}
		e.cur.Store(pruned)
		got, err := e.Decide(context.Background(), ents, req)
		if err != nil {
			t.Fatal(err)
		}
		e.cur.Store(whole)
		want, _ := e.Decide(context.Background(), ents, req)
		if !sameDecision(got, want) {
			t.Fatalf("pruned %+v, whole %+v (%v)", got, want, &pruned.ctxUse)
		}
	})
}
