package api

import (
	"strings"
	"testing"
)

func TestCheckID(t *testing.T) {
	cases := []struct {
		kind  IDKind
		value string
		ok    bool
	}{
		{IDAgent, "counter", true},
		{IDAgent, "Counter", false},
		{IDAgent, "1abc", false},
		{IDAgent, strings.Repeat("a", 63), true},
		{IDAgent, strings.Repeat("a", 64), false},
		{IDSession, "alice", true},
		{IDSession, "a.b_c-D9", true},
		{IDSession, ".", false},
		{IDSession, "..", false},
		{IDSession, "...", true},
		{IDSession, "a/b", false},
		{IDSession, "", false},
		{IDSession, strings.Repeat("s", 128), true},
		{IDSession, strings.Repeat("s", 129), false},
		{IDTool, "gh.create_issue", true},
		{IDTool, "/abs", false},
		{IDTool, "a/b", true},
		{IDStateKey, "any thing \x00 goes", true},
		{IDStateKey, strings.Repeat("k", 513), false},
		{IDNode, "node-1", true},
		{IDNode, "1node", false},
		{IDNode, "Node", false},
		{IDNode, strings.Repeat("n", 64), false},
		{IDApproval, strings.Repeat("a", 5000), false},
		{IDLedgerEntry, "0", true},
		{IDLedgerEntry, "18446744073709551615", true},
		{IDLedgerEntry, "184467440737095516150", false},
		{IDLedgerEntry, "-1", false},
		{IDLedgerEntry, "1e3", false},
		{IDLedgerHash, strings.Repeat("ab", 32), true},
		{IDLedgerHash, strings.Repeat("AB", 32), false},
		{IDLedgerHash, strings.Repeat("ab", 33), false},
		{IDRun, "run-abcdefghij234567", true},
		{IDRun, "run_1", true},
		{IDRun, "Run-1", false},
		{IDRun, "run.1", false},
		{IDRun, "run>", false},
		{IDRun, strings.Repeat("r", 64), true},
		{IDRun, strings.Repeat("r", 65), false},
	}
	for _, c := range cases {
		p := CheckID("f", c.kind, c.value)
		if (p == nil) != c.ok {
			t.Errorf("CheckID(%s, %.20q) = %v, want ok=%v", c.kind, c.value, p, c.ok)
		}
		if p != nil && (p.Kind() != KindInvalidID || p.Field != "f" || p.Status != 400 || len(p.Detail) > 200) {
			t.Errorf("CheckID(%s, %.20q): problem %+v", c.kind, c.value, p)
		}
	}
}

func FuzzCheckID(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "a.b", "\xff", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for kind, rule := range IDRules {
			p := CheckID("f", kind, s)
			if p == nil && (len(s) == 0 || len(s) > rule.Max) {
				t.Fatalf("%s accepted %d bytes", kind, len(s))
			}
			if p != nil && len(p.Detail) > 300 {
				t.Fatalf("%s: detail of %d bytes", kind, len(p.Detail))
			}
		}
	})
}
