package ledger

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

var someRef = Ref{Index: 0, Hash: LeafHash([]byte("x"))}

// TestEntryValidationClass: every way an entry can be wrong is a 422
// naming the field, across every entry type.
func TestEntryValidationClass(t *testing.T) {
	valid := []Entry{changeEntry(1), testEntry(someRef, true), policyEntry(someRef), approvalEntry(someRef),
		provenanceEntry(someRef), rolloutEntry(someRef), rollbackEntry(someRef), auditEntry(1, 3)}
	for _, e := range valid {
		e.Time = testTime
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", e.Type, err)
		}
	}
	long := strings.Repeat("a", MaxText+1)
	cases := []struct {
		name, field string
		mut         func(*Entry)
	}{
		{"unknown type", "type", func(e *Entry) { e.Type = "deploy-everything" }},
		{"empty type", "type", func(e *Entry) { e.Type = "" }},
		{"no body", "change", func(e *Entry) { e.Change = nil }},
		{"two bodies", "test", func(e *Entry) { e.Test = &TestResult{Suite: "x"} }},
		{"no time", "time", func(e *Entry) { e.Time = time.Time{} }},
		{"too many parents", "parents", func(e *Entry) { e.Parents = make([]Ref, MaxParents+1) }},
		{"repeated parent", "parents[1]", func(e *Entry) { e.Parents = []Ref{someRef, someRef} }},
		{"bad agent", "change.agent", func(e *Entry) { e.Change.Agent = "Billing!" }},
		{"bad version", "change.version", func(e *Entry) { e.Change.Version = "../v1" }},
		{"bad parent version", "change.parent_version", func(e *Entry) { e.Change.ParentVersion = strings.Repeat("v", 65) }},
		{"bad digest", "change.bundle_digest", func(e *Entry) { e.Change.BundleDigest = "sha256:XYZ" }},
		{"upper-case digest", "change.bundle_digest", func(e *Entry) { e.Change.BundleDigest = Digest(strings.ToUpper(string(e.Change.BundleDigest))) }},
		{"md5 digest", "change.bundle_digest", func(e *Entry) { e.Change.BundleDigest = "md5:0123" }},
		{"no author", "change.author.id", func(e *Entry) { e.Change.Author.ID = "" }},
		{"control char", "change.author.id", func(e *Entry) { e.Change.Author.ID = "alice\x00" }},
		{"bad utf8", "change.message", func(e *Entry) { e.Change.Message = "\xff\xfe" }},
		{"long message", "change.message", func(e *Entry) { e.Change.Message = long }},
		{"too many labels", "change.author.labels", func(e *Entry) {
			e.Change.Author.Labels = map[string]string{}
			for i := range MaxLabels + 1 {
				e.Change.Author.Labels[strings.Repeat("k", i+1)] = "v"
			}
		}},
		{"long label value", "change.author.labels.team", func(e *Entry) { e.Change.Author.Labels["team"] = strings.Repeat("v", MaxLabelValue+1) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := changeEntry(1)
			c.mut(&e)
			err := e.Validate()
			if !api.IsKind(err, api.KindValidation) {
				t.Fatalf("want a validation problem, got %v", err)
			}
			if p := api.AsProblem(err); p.Field != c.field {
				t.Fatalf("field %q, want %q (%v)", p.Field, c.field, err)
			}
		})
	}
	typed := []struct {
		name, field string
		e           Entry
	}{
		{"test without parent", "parents", Entry{Type: TypeTest, Test: &TestResult{Suite: "u", Passed: true}}},
		{"test failed>total", "test.failed", Entry{Type: TypeTest, Parents: []Ref{someRef}, Test: &TestResult{Suite: "u", Total: 1, Failed: 2}}},
		{"test passed with failures", "test.passed", Entry{Type: TypeTest, Parents: []Ref{someRef}, Test: &TestResult{Suite: "u", Passed: true, Total: 3, Failed: 1}}},
		{"policy result", "policy.result", Entry{Type: TypePolicy, Parents: []Ref{someRef}, Policy: &PolicyDecision{PolicySetDigest: digest("a"), InputDigest: digest("b"), Result: "maybe"}}},
		{"policy input", "policy.input_digest", Entry{Type: TypePolicy, Parents: []Ref{someRef}, Policy: &PolicyDecision{PolicySetDigest: digest("a"), Result: ResultDeny}}},
		{"approval decision", "approval.decision", Entry{Type: TypeApproval, Parents: []Ref{someRef}, Approval: &Approval{Approver: Identity{ID: "bob"}, Decision: "sure"}}},
		{"provenance type", "provenance.predicate_type", Entry{Type: TypeProvenance, Parents: []Ref{someRef}, Provenance: &Provenance{SubjectDigest: digest("a"), StatementDigest: digest("b")}}},
		{"rollout percent", "rollout.percent", Entry{Type: TypeRollout, Parents: []Ref{someRef}, Rollout: &RolloutStep{Agent: "a", Version: "v", Percent: 101, State: RolloutStarted}}},
		{"rollout state", "rollout.state", Entry{Type: TypeRollout, Parents: []Ref{someRef}, Rollout: &RolloutStep{Agent: "a", Version: "v", Percent: 5, State: "yolo"}}},
		{"rollback reason", "rollback.reason", Entry{Type: TypeRollback, Parents: []Ref{someRef}, Rollback: &Rollback{Agent: "a", FromVersion: "v2", ToVersion: "v1"}}},
		{"audit no digests", "audit.digests", Entry{Type: TypeAudit, Audit: &AuditBatch{Log: "audit", FirstSeq: 1}}},
		{"audit seq 0", "audit.first_seq", Entry{Type: TypeAudit, Audit: &AuditBatch{Log: "audit", Digests: []Digest{digest("a")}}}},
		{"audit too many", "audit.digests", Entry{Type: TypeAudit, Audit: &AuditBatch{Log: "audit", FirstSeq: 1, Digests: make([]Digest, MaxAuditRecords+1)}}},
		{"audit bad digest", "audit.digests[1]", Entry{Type: TypeAudit, Audit: &AuditBatch{Log: "audit", FirstSeq: 1, Digests: []Digest{digest("a"), "nope"}}}},
	}
	for _, c := range typed {
		t.Run(c.name, func(t *testing.T) {
			c.e.Time = testTime
			err := c.e.Validate()
			if p := api.AsProblem(err); err == nil || p.Kind() != api.KindValidation || p.Field != c.field {
				t.Fatalf("want a validation problem on %q, got %v (field %q)", c.field, err, p.Field)
			}
		})
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []Entry{changeEntry(1), testEntry(someRef, false), auditEntry(7, 2)} {
		e.Time = testTime
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		again, err := got.Encode()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n%s\n%s", data, again)
		}
	}
}

func TestDecodeEntryRefusesClass(t *testing.T) {
	good, _ := changeEntry(1).Encode()
	for name, data := range map[string]string{
		"unknown field":  strings.Replace(string(good), `"type":"change"`, `"type":"change","extra":1`, 1),
		"repeated field": strings.Replace(string(good), `"type":"change"`, `"type":"change","type":"test"`, 1),
		"unknown type":   strings.Replace(string(good), `"type":"change"`, `"type":"launch"`, 1),
		"trailing data":  string(good) + "{}",
		"null":           "null",
		"not json":       "\x00\x01",
		"bad hash":       `{"type":"test","time":"2025-01-01T00:00:00Z","parents":[{"index":0,"hash":"zz"}],"test":{"suite":"u"}}`,
	} {
		if _, err := DecodeEntry([]byte(data)); err == nil {
			t.Errorf("%s: decoded", name)
		} else if p := api.AsProblem(err); p.Status >= 500 {
			t.Errorf("%s: %v is a %d", name, err, p.Status)
		}
	}
	huge := bytes.Repeat([]byte(" "), MaxEntryBytes+1)
	if _, err := DecodeEntry(huge); !api.IsKind(err, api.KindTooLarge) {
		t.Errorf("huge: %v", err)
	}
}

// FuzzDecodeEntry: the decoder never panics, and what it accepts encodes
// to bytes it accepts again as the same entry.
func FuzzDecodeEntry(f *testing.F) {
	for _, e := range []Entry{changeEntry(1), testEntry(someRef, true), policyEntry(someRef), approvalEntry(someRef),
		provenanceEntry(someRef), rolloutEntry(someRef), rollbackEntry(someRef), auditEntry(1, 2)} {
		e.Time = testTime
		data, err := e.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"type":"change"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			if p := api.AsProblem(err); p.Status >= 500 {
				t.Fatalf("decode error is a %d: %v", p.Status, err)
			}
			return
		}
		again, err := e.Encode()
		if err != nil {
			t.Fatalf("decoded entry does not encode: %v", err)
		}
		e2, err := DecodeEntry(again)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		a, _ := json.Marshal(e)
		b, _ := json.Marshal(e2)
		if !bytes.Equal(a, b) {
			t.Fatalf("round trip differs:\n%s\n%s", a, b)
		}
	})
}
