package policy

import (
	"encoding/json"
	"fmt"

	cedar "github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Context pruning.
//
// The daemon adds context keys that change with every request (rate, the
// caller's requests this minute) or every hour (hour). Building a Cedar
// record of them costs a map, a sort and a hash per decision, and it makes
// every decision's input unique. A policy can observe a context key only by
// naming it: `context.k`, `context["k"]` or `context has k`. Any other use
// of `context` (comparing the whole record, putting it in a set or record)
// observes every key. So the snapshot records which keys its policies name
// and whether any uses the whole record; a request's extra keys that no
// policy can observe are left out of its context, which changes no
// decision, reason or error. The label keys are always kept.

// contextUse is what a policy set reads of the request context.
type contextUse struct {
	whole bool            // some policy uses the context record itself
	attrs map[string]bool // keys policies name with . or has
}

// uses reports whether a policy may observe context key k.
func (u *contextUse) uses(k string) bool { return u.whole || u.attrs[k] }

// add records what p reads of the context. A policy whose JSON form
// cannot be read counts as using the whole context.
func (u *contextUse) add(p *cedar.Policy) {
	b, err := p.MarshalJSON()
	if err != nil {
		u.whole = true
		return
	}
	var tree any
	if err := json.Unmarshal(b, &tree); err != nil {
		u.whole = true
		return
	}
	u.walk(tree)
}

// walk visits a policy's JSON (Cedar's JSON policy format): an attribute
// access or has-test on the context variable names one key; any other
// occurrence of the variable uses the whole record.
func (u *contextUse) walk(n any) {
	switch n := n.(type) {
	case []any:
		for _, c := range n {
			u.walk(c)
		}
	case map[string]any:
		if v, ok := n["Var"].(string); ok && v == "context" && len(n) == 1 {
			u.whole = true
			return
		}
		for k, c := range n {
			if k == "." || k == "has" {
				if attr, ok := contextAttr(c); ok {
					if u.attrs == nil {
						u.attrs = map[string]bool{}
					}
					u.attrs[attr] = true
					continue
				}
			}
			u.walk(c)
		}
	}
}

// contextAttr reads {"left": {"Var": "context"}, "attr": k}.
func contextAttr(n any) (string, bool) {
	m, ok := n.(map[string]any)
	if !ok || len(m) != 2 {
		return "", false
	}
	left, ok := m["left"].(map[string]any)
	if !ok || len(left) != 1 || left["Var"] != "context" {
		return "", false
	}
	attr, ok := m["attr"].(string)
	return attr, ok
}

// labelRecords caches the context record of each label pair, so the common
// case (no extra context a policy reads) allocates nothing.
var labelRecords = func() (r [2][3]types.Record) {
	for i := range 2 {
		for c := range 3 {
			r[i][c] = Labels{Integrity: Integrity(i), Confidentiality: Confidentiality(c)}.record(nil)
		}
	}
	return r
}()

// contextRecord is the request context: the labels and the keys of extra
// that a policy of the set may observe (u nil: all of them).
func contextRecord(u *contextUse, l Labels, extra types.RecordMap) types.Record {
	n := 0
	for k := range extra {
		if u == nil || u.uses(string(k)) {
			n++
		}
	}
	if n == 0 {
		return labelRecords[min(int(l.Integrity), 1)][min(int(l.Confidentiality), 2)]
	}
	if n < len(extra) {
		kept := make(types.RecordMap, n)
		for k, v := range extra {
			if u.uses(string(k)) {
				kept[k] = v
			}
		}
		extra = kept
	}
	return l.record(extra)
}

// String describes u (for tests and logs).
func (u *contextUse) String() string {
	if u.whole {
		return "whole context"
	}
	return fmt.Sprint(u.attrs)
}
