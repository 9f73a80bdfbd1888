package toolbox

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// staticProvider serves fixed tools; Call echoes the arguments.
type staticProvider struct {
	tools []Tool
	calls int
}

func (p *staticProvider) Tools(context.Context) ([]Tool, error) { return p.tools, nil }

func (p *staticProvider) Call(_ context.Context, _ Caller, name string, args json.RawMessage) (Result, error) {
	p.calls++
	if name == "fail" {
		return Result{}, errors.New("boom")
	}
	return Result{Text: string(args), Structured: json.RawMessage(args)}, nil
}

const objSchema = `{"type":"object","properties":{"n":{"type":"integer","minimum":0},"s":{"type":"string","enum":["a","b"]}},"required":["n"],"additionalProperties":false}`

func tool(name, desc string) Tool {
	return Tool{Name: name, Description: desc, InputSchema: json.RawMessage(objSchema), Source: "test"}
}

type recAudit struct {
	mu   sync.Mutex
	recs []CallRecord
}

func (a *recAudit) AuditTool(_ context.Context, r CallRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
}

func (a *recAudit) last() CallRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.recs[len(a.recs)-1]
}

type denyAuthz struct{ deny string }

func (d denyAuthz) AuthorizeTool(_ context.Context, _ Caller, t Tool) error {
	if t.Name == d.deny {
		return Errorf(CodeForbidden, t.Name, "policy says no")
	}
	return nil
}

type recLabeler struct{ got []string }

func (l *recLabeler) ReadUntrusted(_ context.Context, c Caller, tool string) error {
	l.got = append(l.got, c.Session+":"+tool)
	return nil
}

func newTestBox(t *testing.T, cfg Config) (*Toolbox, *staticProvider, *recAudit) {
	t.Helper()
	b := &staticProvider{tools: []Tool{tool("zeta", "last letter"), tool("alpha", "first letter of the alphabet"), tool("fail", "always fails")}}
	a := &recAudit{}
	cfg.Builtins, cfg.Auditor = b, a
	return New(cfg), b, a
}

func TestListSortedAndProviders(t *testing.T) {
	tb, _, _ := newTestBox(t, Config{})
	ctx := context.Background()
	up := &staticProvider{tools: []Tool{tool("up.beta", "upstream beta"), tool("alpha", "shadowed by the built-in")}}
	if err := tb.AddProvider("up", up); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddProvider(BuiltinProvider, up); err == nil {
		t.Fatal("adding a provider named builtin must fail")
	}
	ts, _ := tb.List(ctx)
	var names []string
	for _, x := range ts {
		names = append(names, x.Name)
	}
	if !slices.Equal(names, []string{"alpha", "fail", "up.beta", "zeta"}) {
		t.Fatalf("list: %v", names)
	}
	if ts[0].Description != "first letter of the alphabet" {
		t.Fatal("a built-in must win over a provider's tool of the same name")
	}
	if !tb.RemoveProvider("up") || tb.RemoveProvider("up") {
		t.Fatal("remove provider")
	}
	if ts, _ = tb.List(ctx); len(ts) != 3 {
		t.Fatalf("after remove: %d tools", len(ts))
	}
}

func TestSearchRanks(t *testing.T) {
	tb, _, _ := newTestBox(t, Config{})
	q := &staticProvider{tools: []Tool{{Name: "up.letters", Description: "letter tools", Quarantined: true, InputSchema: json.RawMessage(objSchema)}}}
	_ = tb.AddProvider("up", q)
	got, err := tb.Search(context.Background(), "Alpha letter", 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range got {
		names = append(names, x.Name)
	}
	// alpha: name+desc for "alpha" (3) + desc "letter" (1); up.letters: name+desc "letter" (3); zeta: desc "letter" (1).
	if !slices.Equal(names, []string{"alpha", "up.letters", "zeta"}) || !got[1].Quarantined {
		t.Fatalf("search: %v", names)
	}
	if got, _ := tb.Search(context.Background(), "nothing-matches", 5); len(got) != 0 {
		t.Fatalf("no match: %v", got)
	}
	if got, _ := tb.Search(context.Background(), "", 2); len(got) != 2 {
		t.Fatalf("empty query with limit 2: %d", len(got))
	}
}

func TestCallRefusals(t *testing.T) {
	lab := &recLabeler{}
	tb, prov, aud := newTestBox(t, Config{Authorizer: denyAuthz{deny: "zeta"}, Labeler: lab, MaxArgBytes: 1024})
	_ = tb.AddProvider("up", &staticProvider{tools: []Tool{
		{Name: "up.q", Quarantined: true, QuarantineReason: "description changed", InputSchema: json.RawMessage(objSchema), Source: "up"},
		{Name: "up.web", Untrusted: true, InputSchema: json.RawMessage(objSchema), Source: "up"},
	}})
	ctx := context.Background()
	c := Caller{Principal: "spiffe://t/user/u"}
	cases := []struct {
		name, tool, args string
		caller           Caller
		code             Code
		field            string
	}{
		{"unknown", "nope", `{}`, c, CodeUnknownTool, ""},
		{"quarantined", "up.q", `{"n":1}`, c, CodeQuarantined, ""},
		{"not in manifest", "alpha", `{"n":1}`, Caller{Principal: "p", Agent: "a", Session: "s", Allowed: []string{"zeta"}}, CodeNotInList, ""},
		{"policy", "zeta", `{"n":1}`, c, CodeForbidden, ""},
		{"too large", "alpha", `{"s":"` + strings.Repeat("a", 2000) + `"}`, c, CodeTooLarge, ""},
		{"not json", "alpha", `{"n":`, c, CodeInvalidArgs, ""},
		{"not an object", "alpha", `[1]`, c, CodeInvalidArgs, ""},
		{"missing required", "alpha", `{}`, c, CodeInvalidArgs, "n"},
		{"wrong type", "alpha", `{"n":"one"}`, c, CodeInvalidArgs, "n"},
		{"enum", "alpha", `{"n":1,"s":"c"}`, c, CodeInvalidArgs, "s"},
		{"extra property", "alpha", `{"n":1,"x":2}`, c, CodeInvalidArgs, ""},
		{"negative", "alpha", `{"n":-1}`, c, CodeInvalidArgs, "n"},
		{"tool failure", "fail", `{"n":1}`, c, CodeToolFailed, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := prov.calls
			_, err := tb.Call(ctx, tc.caller, tc.tool, json.RawMessage(tc.args))
			var e *Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Message == "" {
				t.Fatalf("want %s, got %v", tc.code, err)
			}
			if tc.field != "" && (len(e.Fields) == 0 || e.Fields[0].Field != tc.field) {
				t.Errorf("fields %+v, want %s", e.Fields, tc.field)
			}
			if tc.code != CodeToolFailed && prov.calls != before {
				t.Error("a refused call reached the provider")
			}
			rec := aud.last()
			if rec.Tool != tc.tool || rec.Code != tc.code || len(rec.ArgsSHA256) != 64 {
				t.Errorf("audit %+v", rec)
			}
		})
	}
	res, err := tb.Call(ctx, c, "alpha", json.RawMessage(`{"n":2,"s":"a"}`))
	if err != nil || res.Text != `{"n":2,"s":"a"}` {
		t.Fatalf("good call: %+v %v", res, err)
	}
	if rec := aud.last(); rec.Decision != "allow" || len(rec.ResultSHA256) != 64 || rec.Code != "" {
		t.Errorf("audit of a good call: %+v", rec)
	}
	if _, err := tb.Call(ctx, c, "alpha", nil); !errors.Is(err, ErrInvalidArgs) {
		t.Errorf("nil args are {} and miss the required n: %v", err)
	}
	sc := Caller{Principal: "p", Agent: "a", Session: "s1"}
	res, err = tb.Call(ctx, sc, "up.web", json.RawMessage(`{"n":1}`))
	if err != nil || !res.Untrusted || !slices.Equal(lab.got, []string{"s1:up.web"}) {
		t.Fatalf("untrusted tool: %+v %v labeler %v", res, err, lab.got)
	}
}

func TestRateLimits(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	tb, _, _ := newTestBox(t, Config{Now: clock, CallerRate: Rate{PerSecond: 1, Burst: 2}, ToolRates: map[string]Rate{"zeta": {PerSecond: 1, Burst: 1}}})
	ctx := context.Background()
	a, b := Caller{Principal: "p1", Agent: "a1"}, Caller{Principal: "p2", Agent: "a2"}
	args := json.RawMessage(`{"n":1}`)
	for i := range 2 {
		if _, err := tb.Call(ctx, a, "alpha", args); err != nil {
			t.Fatalf("call %d within burst: %v", i, err)
		}
	}
	_, err := tb.Call(ctx, a, "alpha", args)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeRateLimited || e.RetryAfterS <= 0 {
		t.Fatalf("third call: %v", err)
	}
	if _, err := tb.Call(ctx, b, "alpha", args); err != nil {
		t.Fatalf("another agent has its own bucket: %v", err)
	}
	if _, err := tb.Call(ctx, b, "zeta", args); err != nil {
		t.Fatalf("zeta first: %v", err)
	}
	if _, err := tb.Call(ctx, a, "zeta", args); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("zeta's own bucket is shared across callers: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := tb.Call(ctx, a, "alpha", args); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	tb.SetToolRate("fail", Rate{PerSecond: 0.001, Burst: 1})
	_, _ = tb.Call(ctx, b, "fail", args)
	if _, err := tb.Call(ctx, b, "fail", args); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after SetToolRate: %v", err)
	}
}

// FuzzValidateArgs feeds arbitrary arguments through validation: it must
// never panic, and anything it accepts is a JSON object.
func FuzzValidateArgs(f *testing.F) {
	for _, s := range []string{`{}`, `{"n":1}`, `{"n":"x"}`, `[]`, `null`, `{"n":1e400}`, `{"n":1,"s":"a"}`, `{"n":1.5}`, "{\"n\":1,\"s\":\"\xff\"}", `{"n":{"n":{}}}`} {
		f.Add([]byte(s))
	}
	var c schemaCache
	tl := tool("alpha", "")
	f.Fuzz(func(t *testing.T, args []byte) {
		err := c.validate(tl, args)
		if err == nil {
			var m map[string]any
			if json.Unmarshal(args, &m) != nil || m == nil {
				t.Fatalf("accepted non-object %q", args)
			}
			return
		}
		if !errors.Is(err, ErrInvalidArgs) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// BenchmarkCall is the toolbox's own cost of one call (lookup, manifest
// list, limits, schema validation, audit hook) around a provider that does
// nothing, without policy.
func BenchmarkCall(b *testing.B) {
	tb := New(Config{Builtins: &staticProvider{tools: []Tool{tool("alpha", "a")}}, Auditor: &recAudit{},
		CallerRate: Rate{PerSecond: 1e9, Burst: 1 << 30}})
	c := Caller{Principal: "p", Agent: "a", Session: "s", Allowed: []string{"alpha"}}
	args := json.RawMessage(`{"n":1,"s":"a"}`)
	ctx := context.Background()
	for b.Loop() {
		if _, err := tb.Call(ctx, c, "alpha", args); err != nil {
			b.Fatal(err)
		}
	}
}
