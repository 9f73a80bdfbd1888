package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

const testOrigin = "test.agentcloud.local/ledger"

// testKey is one key for the whole test binary (and its crash children).
var testSKey, testVKey = func() (string, string) {
	s, v, err := GenerateKey(testOrigin)
	if err != nil {
		panic(err)
	}
	return s, v
}()

func mustKey(t testing.TB) *Key {
	t.Helper()
	k, err := ParseKey(testSKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t testing.TB, dir string, noSync bool) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: dir, NoSync: noSync})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

// openTest opens a ledger on a fresh store that the test closes.
func openTest(t testing.TB, noSync bool, o Options) (*Ledger, *store.Store) {
	t.Helper()
	st := openStore(t, t.TempDir(), noSync)
	l, err := Open(context.Background(), st, mustKey(t), o)
	if err != nil {
		_ = st.Close()
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(func() {
		_ = l.Close()
		_ = st.Close()
	})
	return l, st
}

var testTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func digest(s string) Digest { return DigestOf([]byte(s)) }

func changeEntry(i int) Entry {
	return Entry{Type: TypeChange, Time: testTime.Add(time.Duration(i) * time.Millisecond), Change: &Change{
		Agent: "billing", Version: fmt.Sprintf("v%d", i), BundleDigest: digest(fmt.Sprint("bundle", i)),
		Author: Identity{ID: "spiffe://agentcloud.local/user/alice", Labels: map[string]string{"team": "payments"}}}}
}

func testEntry(parent Ref, passed bool) Entry {
	failed := 0
	if !passed {
		failed = 1
	}
	return Entry{Type: TypeTest, Parents: []Ref{parent}, Test: &TestResult{Suite: "unit", Passed: passed, Total: 12, Failed: failed}}
}

func policyEntry(parents ...Ref) Entry {
	return Entry{Type: TypePolicy, Parents: parents, Policy: &PolicyDecision{
		PolicySetDigest: digest("policies"), InputDigest: digest("input"), Result: ResultAllow}}
}

func approvalEntry(parent Ref) Entry {
	return Entry{Type: TypeApproval, Parents: []Ref{parent}, Approval: &Approval{
		Approver: Identity{ID: "spiffe://agentcloud.local/user/bob"}, Decision: DecisionApproved}}
}

func provenanceEntry(parent Ref) Entry {
	return Entry{Type: TypeProvenance, Parents: []Ref{parent}, Provenance: &Provenance{
		SubjectDigest: digest("bundle"), PredicateType: "https://slsa.dev/provenance/v1", StatementDigest: digest("statement")}}
}

func rolloutEntry(parents ...Ref) Entry {
	return Entry{Type: TypeRollout, Parents: parents, Rollout: &RolloutStep{Agent: "billing", Version: "v2", Step: 1, Percent: 10, State: RolloutStarted}}
}

func rollbackEntry(parent Ref) Entry {
	return Entry{Type: TypeRollback, Parents: []Ref{parent}, Rollback: &Rollback{Agent: "billing", FromVersion: "v2", ToVersion: "v1", Reason: "error rate"}}
}

func auditEntry(first uint64, n int) Entry {
	ds := make([]Digest, n)
	for i := range ds {
		ds[i] = digest(fmt.Sprint("audit record ", first+uint64(i)))
	}
	return Entry{Type: TypeAudit, Audit: &AuditBatch{Log: "audit", FirstSeq: first, Digests: ds}}
}

// appendN appends n change entries and returns their receipts.
func appendN(t testing.TB, l *Ledger, n int) []Receipt {
	t.Helper()
	out := make([]Receipt, n)
	for i := range n {
		r, err := l.Append(context.Background(), changeEntry(i))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		out[i] = r
	}
	return out
}
