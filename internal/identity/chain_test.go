package identity

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TestRevocationChainClass: a token minted with another carries that
// token's id and chain; revoking any token of the chain refuses every
// token below it, and nothing above or beside it.
func TestRevocationChainClass(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ca := newTestCA(t, "", clk)
	alice := spiffeid.RequireFromString("spiffe://agentcloud.local/user/alice")
	mint := func(parent string) (string, Token) {
		t.Helper()
		var chain []string
		if parent != "" {
			p, err := ca.VerifyJWT(ctx, parent, "api")
			if err != nil {
				t.Fatalf("parent: %v", err)
			}
			if chain, err = p.Lineage(); err != nil {
				t.Fatal(err)
			}
		}
		tok, _, err := ca.IssueJWT(alice, []string{"api"}, time.Hour, chain...)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ca.VerifyJWT(ctx, tok, "api")
		if err != nil {
			t.Fatal(err)
		}
		return tok, v
	}
	t1, v1 := mint("")
	t2, v2 := mint(t1)
	t3, v3 := mint(t2)
	sib, _ := mint(t1)
	other, _ := mint("")
	if len(v1.Chain) != 0 || len(v2.Chain) != 1 || v2.Chain[0] != v1.ID || len(v3.Chain) != 2 || v3.Chain[0] != v2.ID || v3.Chain[1] != v1.ID {
		t.Fatalf("chains: t1 %v t2 %v t3 %v", v1.Chain, v2.Chain, v3.Chain)
	}
	if r, err := ca.ReadJWT(t3); err != nil || r.ID != v3.ID || len(r.Chain) != 2 {
		t.Fatalf("ReadJWT: %+v %v", r, err)
	}
	valid := func(name, tok string, want bool) {
		t.Helper()
		_, err := ca.VerifyJWT(ctx, tok, "api")
		if want && err != nil || !want && !errors.Is(err, ErrRevokedToken) {
			t.Errorf("%s: err = %v, want valid=%v", name, err, want)
		}
	}
	// Revoking the middle one refuses it and what was minted from it.
	if err := ca.Revoker().Revoke(ctx, v2.ID, v2.Expiry); err != nil {
		t.Fatal(err)
	}
	valid("t1 after revoking t2", t1, true)
	valid("t2 after revoking t2", t2, false)
	valid("t3 after revoking t2", t3, false)
	valid("sibling after revoking t2", sib, true)
	// Revoking the root refuses the whole tree.
	if err := ca.Revoker().Revoke(ctx, v1.ID, v1.Expiry); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"t1": t1, "t2": t2, "t3": t3, "sibling": sib} {
		valid(name+" after revoking t1", tok, false)
	}
	valid("unrelated token", other, true)
	if _, err := ca.VerifyJWT(ctx, t3, "api"); err == nil || !strings.Contains(err.Error(), "minted with token") {
		t.Errorf("a descendant's error should name the revoked ancestor: %v", err)
	}

	// Depth is bounded: a chain at the limit cannot be extended.
	tok, v := mint("")
	for range MaxChainDepth - 1 {
		tok, v = mint(tok)
	}
	if len(v.Chain) != MaxChainDepth-1 {
		t.Fatalf("chain %d long", len(v.Chain))
	}
	if _, err := v.Lineage(); err != nil {
		t.Fatalf("lineage at the limit: %v", err)
	}
	_, v = mint(tok)
	if _, err := v.Lineage(); !errors.Is(err, ErrChainTooDeep) {
		t.Fatalf("lineage past the limit: %v", err)
	}
	long := make([]string, MaxChainDepth+1)
	for i := range long {
		long[i] = "jti" + string(rune('a'+i))
	}
	if _, _, err := ca.IssueJWT(alice, []string{"api"}, time.Hour, long...); !errors.Is(err, ErrChainTooDeep) {
		t.Fatalf("issue with a chain past the limit: %v", err)
	}
	if _, _, err := ca.IssueJWT(alice, []string{"api"}, time.Hour, "bad id"); err == nil {
		t.Fatal("issued with a malformed chain entry")
	}
}

var chainCases = []struct {
	raw  string
	want []string
	bad  bool
}{
	{raw: ``},
	{raw: `null`},
	{raw: `[]`},
	{raw: `["a"]`, want: []string{"a"}},
	{raw: `["AbC-_.9","x"]`, want: []string{"AbC-_.9", "x"}},
	{raw: `["a","b","c","d","e","f","g","h"]`, want: []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
	{raw: `["a","b","c","d","e","f","g","h","i"]`, bad: true},
	{raw: `[""]`, bad: true},
	{raw: `["a b"]`, bad: true},
	{raw: `[".."]`, bad: true},
	{raw: `["` + strings.Repeat("a", 129) + `"]`, bad: true},
	{raw: `"a"`, bad: true},
	{raw: `[1]`, bad: true},
	{raw: `{"a":1}`, bad: true},
	{raw: `[["a"]]`, bad: true},
	{raw: `["a"`, bad: true},
}

func TestParseChain(t *testing.T) {
	for _, tc := range chainCases {
		got, err := ParseChain(json.RawMessage(tc.raw))
		if tc.bad {
			if err == nil || !errors.Is(err, ErrMalformedToken) {
				t.Errorf("ParseChain(%s) = %v, %v; want malformed", tc.raw, got, err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ParseChain(%s) = %v, %v; want %v", tc.raw, got, err, tc.want)
		}
	}
}

func FuzzParseChain(f *testing.F) {
	for _, tc := range chainCases {
		f.Add([]byte(tc.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		chain, err := ParseChain(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("error %v is not ErrMalformedToken", err)
			}
			return
		}
		if len(chain) > MaxChainDepth {
			t.Fatalf("%d entries accepted", len(chain))
		}
		if checkChain(chain) != nil {
			t.Fatalf("accepted %q fails checkChain", chain)
		}
		// What is accepted is what IssueJWT writes back.
		b, _ := json.Marshal(chain)
		again, err := ParseChain(b)
		if err != nil || strings.Join(again, "\x00") != strings.Join(chain, "\x00") {
			t.Fatalf("round trip %q: %q %v", chain, again, err)
		}
	})
}

func FuzzUnverifiedSubject(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9hL3VzZXIvYiJ9.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("x.eyJzdWIiOjF9.y")
	f.Fuzz(func(t *testing.T, tok string) {
		sub := UnverifiedSubject(tok)
		if len(sub) > len(tok) {
			t.Fatalf("subject %d bytes from a %d-byte token", len(sub), len(tok))
		}
	})
}
